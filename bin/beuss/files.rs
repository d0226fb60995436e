//! Temporary files beside their destination, for outputs that must appear whole.
//!
//! A temporary name in a shared folder must never be opened if something already
//! has it: with `File::create`, a symlink planted under a predictable name would make
//! beuss truncate and write whatever it points to. Here the name is opened with
//! `create_new` (`O_CREAT | O_EXCL`, which does not follow a symlink), and a name
//! that is taken is simply passed over for the next one.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Names tried before giving up (only an adversary or a flood of beuss runs in one
/// folder can take more than the first).
const ATTEMPTS: u32 = 100;

/// Creates a new, empty file `.{stem}.beuss-{pid}-{tag}.tmp` in `dir` and returns it
/// with its path; `tag` varies per call and per attempt.
///
/// # Errors
/// The I/O error that stopped it, or `AlreadyExists` if every name tried was taken.
pub fn create_temp(dir: &Path, stem: &OsStr) -> io::Result<(File, PathBuf)> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    for attempt in 0..ATTEMPTS {
        let mut name = OsString::from(".");
        name.push(stem);
        name.push(format!(
            ".beuss-{}-{:08x}.tmp",
            std::process::id(),
            seed.wrapping_add(attempt.wrapping_mul(0x9e37_79b9))
        ));
        let path = dir.join(name);
        match File::options().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{ATTEMPTS} temporary names in {} were all taken",
            dir.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name already taken, even by a symlink to a file elsewhere, is passed over:
    /// the symlink's target is left untouched.
    #[test]
    fn never_opens_an_existing_name() {
        let dir = std::env::temp_dir().join(format!("beuss-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let (_, first) = create_temp(&dir, OsStr::new("out")).unwrap();
        std::fs::remove_file(&first).unwrap();
        std::os::unix::fs::symlink(&victim, &first).unwrap();
        let mut seen = vec![first];
        for _ in 0..5 {
            let (mut file, path) = create_temp(&dir, OsStr::new("out")).unwrap();
            assert!(!seen.contains(&path), "{path:?} was handed out twice");
            io::Write::write_all(&mut file, b"new").unwrap();
            seen.push(path);
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
