//! How the two decoder targets read their input: one byte picks a limit from a table,
//! one byte says how many of the bytes after it are piece sizes, and the rest is the
//! stream, which each target decodes whole and in those pieces.

/// The limit picked from `table`, the piece sizes (each 1..=256; none means one byte
/// at a time), and the stream; `None` for an input shorter than two bytes.
pub fn split_input<'a, T: Copy>(data: &'a [u8], table: &[T]) -> Option<(T, Vec<usize>, &'a [u8])> {
    let [pick, k, rest @ ..] = data else {
        return None;
    };
    let limit = table[usize::from(*pick) % table.len()];
    let k = usize::from(*k % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(k);
    let pieces = sizes.iter().map(|&s| usize::from(s) + 1).collect();
    Some((limit, pieces, stream))
}
