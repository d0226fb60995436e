//! The pattern trie: patterns bound to targets, and "which targets match this
//! subject" in time that follows the subject's tokens, not the number of bindings.
//!
//! One node per distinct pattern prefix, as in NATS's sublist: a node has its literal
//! children by token, at most one `*` child, the targets of patterns that end at it,
//! and the targets of patterns that end with `>` right after it. A match walks the
//! subject's tokens down the literal and `*` branches only, so its cost is the number
//! of nodes on those paths (at most a few per token with real pattern sets) plus the
//! targets it finds; bindings elsewhere are never looked at.
//!
//! The honest bound: a lookup visits each node at most once, and only nodes whose
//! path of literal and `*` tokens fits the subject, so it is O(nodes) in the worst
//! case, reached only by a pattern set built for it (every mix of `*` and literal
//! tokens along one subject). Real sets visit a few nodes per token; see
//! `beuss-bench -t route` and BENCHMARKS.md.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::subject::MAX_SUBJECT_LEN;

/// Most tokens a pattern the trie stores may have: as many as the longest valid
/// pattern has ([`MAX_SUBJECT_LEN`] bytes of one-byte tokens). It bounds the depth of
/// the trie, and so of every recursion over it, whatever strings it is given.
pub const MAX_TOKENS: usize = MAX_SUBJECT_LEN / 2 + 1;

/// Patterns bound to targets (queue names, subscription keys); answers "which targets
/// match this subject" in about O(tokens of the subject), whatever the number of
/// bindings.
///
/// A binding is a (pattern, target) pair, stored once however often it is inserted.
/// Patterns are taken as valid ([`check_pattern`](super::check_pattern)); the trie
/// does not check them again, but no input string makes it panic: it stores what it
/// is given token by token (a `>` that is not last is then a literal token), and
/// refuses patterns of more than [`MAX_TOKENS`] tokens.
///
/// Memory, on a 64-bit machine: a node is 64 bytes, held in its parent's child list
/// with its token (24 bytes; a token longer than 22 bytes is allocated apart), and
/// its targets are allocated apart. A binding whose pattern shares all but its last
/// token with others costs one node and one target. `beuss-bench -t route` measures
/// about 110 bytes of resident memory per node, targets included
/// ([`node_count`](Self::node_count)).
pub struct Trie<T> {
    root: Node<T>,
    /// Bindings held, kept so that `len` is O(1).
    len: usize,
    /// Nodes besides the root, kept so that a caller can charge memory by them.
    nodes: usize,
}

/// Most literal children a node keeps in a plain vector, searched in order; with more
/// it switches to a hash map, and back when it is down to half as many. Comparing a
/// few short tokens costs less than hashing one, and most nodes below the first level
/// have few children (regions, entities, event names).
const FEW: usize = 8;

/// One pattern prefix.
struct Node<T> {
    /// Children by literal token.
    literal: Children<T>,
    /// The `*` child, boxed so that nodes without one (most) pay a pointer.
    star: Option<Box<Node<T>>>,
    /// Targets of patterns that end at this node (`targets[..split]`), then those of
    /// patterns that end with `>` right after it (`targets[split..]`); each part
    /// sorted, without duplicates. One vector rather than two saves a header per
    /// node, and most nodes have one target or none.
    targets: Vec<T>,
    split: usize,
}

/// The literal children of a node.
enum Children<T> {
    /// At most [`FEW`], in no order.
    Few(Vec<(Token, Node<T>)>),
    /// More than that. std's default hasher is keyed per map, so clients cannot pick
    /// tokens that collide. Boxed (clippy's lint is about the extra allocation, taken
    /// only by wide nodes) so that the enum, and every node, stays 24 bytes smaller.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Token, Node<T>>>),
}

/// Longest token kept inside a [`Token`] rather than on the heap.
const INLINE: usize = 22;

/// A literal token as a child's key, 24 bytes: a short one (most are) is held in the
/// key itself, so it costs no allocation of its own and is compared without following
/// a pointer, which in a large trie would be a cache miss per child looked at.
enum Token {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Token {
    fn new(token: &str) -> Token {
        let b = token.as_bytes();
        let mut bytes = [0; INLINE];
        match (bytes.get_mut(..b.len()), u8::try_from(b.len())) {
            (Some(head), Ok(len)) => {
                head.copy_from_slice(b);
                Token::Inline { len, bytes }
            }
            _ => Token::Heap(Box::from(b)),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Token::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Token::Heap(b) => b,
        }
    }

    /// Whether this is `token`, whose [`head`] is `head`. The hot path of a match: an
    /// inline token is told apart from another of the same length by one 8-byte
    /// comparison, without a call to `memcmp`.
    fn is(&self, token: &[u8], head: u64) -> bool {
        match self {
            Token::Inline { len, bytes } => {
                usize::from(*len) == token.len()
                    && bytes.first_chunk().map_or(0, |h| u64::from_le_bytes(*h)) == head
                    && (token.len() <= 8 || bytes.get(8..token.len()) == token.get(8..))
            }
            Token::Heap(b) => **b == *token,
        }
    }

    /// The token as text (it was made from a `&str`, so the check cannot fail).
    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// The first 8 bytes of a token as a little-endian number, padded with zeros as an
/// inline token's are. Shifts rather than a copy into a buffer: the copy became a
/// `memcpy` call and a stalled load, a fifth of a whole match.
fn head(token: &[u8]) -> u64 {
    match token.first_chunk() {
        Some(h) => u64::from_le_bytes(*h),
        None => token.iter().rev().fold(0, |h, &b| (h << 8) | u64::from(b)),
    }
}

// Equality and hashing are those of the bytes, so that a map keyed by tokens can be
// searched with a subject's `&[u8]` (the `Borrow` contract).
impl PartialEq for Token {
    fn eq(&self, other: &Token) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Token {}

impl Hash for Token {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for Token {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: Children::Few(Vec::new()),
            star: None,
            targets: Vec::new(),
            split: 0,
        }
    }
}

impl<T> Node<T> {
    /// Whether the node holds nothing, so that its parent can drop it.
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.star.is_none() && self.targets.is_empty()
    }

    /// Targets of patterns that end here.
    fn here(&self) -> &[T] {
        self.targets.get(..self.split).unwrap_or_default()
    }

    /// Targets of patterns that end with `>` after here.
    fn rest(&self) -> &[T] {
        self.targets.get(self.split..).unwrap_or_default()
    }

    /// Nodes below this one, counted (the tests check the trie's running count).
    #[cfg(test)]
    fn descendants(&self) -> usize {
        let star = self.star.as_deref().map_or(0, |c| 1 + c.descendants());
        let mut literal = 0;
        self.literal.each(|_, c| literal += 1 + c.descendants());
        star + literal
    }
}

impl<T: Ord> Node<T> {
    /// Adds `target` to `here` (or to `rest` if `full`); false if it was there.
    fn add(&mut self, target: T, full: bool) -> bool {
        let (base, part) = if full {
            (self.split, self.rest())
        } else {
            (0, self.here())
        };
        match part.binary_search(&target) {
            Ok(_) => false,
            Err(i) => {
                // Most nodes have one target: grow one at a time while the list is
                // short (a vector's first growth is to 4), by doubling after that.
                if self.targets.len() < 4 {
                    self.targets.reserve_exact(1);
                }
                self.targets.insert(base + i, target);
                if !full {
                    self.split += 1;
                }
                true
            }
        }
    }

    /// Takes `target` off `here` (or `rest` if `full`); whether it was there.
    fn take(&mut self, target: &T, full: bool) -> bool {
        let (base, part) = if full {
            (self.split, self.rest())
        } else {
            (0, self.here())
        };
        let Ok(i) = part.binary_search(target) else {
            return false;
        };
        self.targets.remove(base + i);
        if !full {
            self.split -= 1;
        }
        shrink_vec(&mut self.targets);
        true
    }
}

impl<T> Children<T> {
    fn is_empty(&self) -> bool {
        match self {
            Children::Few(v) => v.is_empty(),
            Children::Many(m) => m.is_empty(),
        }
    }

    fn get(&self, token: &str) -> Option<&Node<T>> {
        match self {
            Children::Few(v) => {
                let head = head(token.as_bytes());
                v.iter()
                    .find(|(k, _)| k.is(token.as_bytes(), head))
                    .map(|(_, c)| c)
            }
            Children::Many(m) => m.get(token.as_bytes()),
        }
    }

    fn get_mut(&mut self, token: &str) -> Option<&mut Node<T>> {
        match self {
            Children::Few(v) => v
                .iter_mut()
                .find(|(k, _)| k.as_bytes() == token.as_bytes())
                .map(|(_, c)| c),
            Children::Many(m) => m.get_mut(token.as_bytes()),
        }
    }

    /// The child for `token`, made if missing (then the flag is true).
    fn get_or_insert(&mut self, token: &str) -> (&mut Node<T>, bool) {
        if let Children::Few(v) = self
            && v.len() >= FEW
            && !v.iter().any(|(k, _)| k.as_bytes() == token.as_bytes())
        {
            let map: HashMap<Token, Node<T>> = std::mem::take(v).into_iter().collect();
            *self = Children::Many(Box::new(map));
        }
        match self {
            Children::Few(v) => {
                let (i, created) =
                    match v.iter().position(|(k, _)| k.as_bytes() == token.as_bytes()) {
                        Some(i) => (i, false),
                        None => {
                            // Exactly: a vector's first growth is to 4 entries, and
                            // most nodes have one child.
                            v.reserve_exact(1);
                            v.push((Token::new(token), Node::default()));
                            (v.len() - 1, true)
                        }
                    };
                (&mut v[i].1, created)
            }
            Children::Many(m) => match m.entry(Token::new(token)) {
                Entry::Occupied(e) => (e.into_mut(), false),
                Entry::Vacant(e) => (e.insert(Node::default()), true),
            },
        }
    }

    /// Drops the child for `token` (left empty by a removal).
    fn remove(&mut self, token: &str) {
        match self {
            Children::Few(v) => {
                if let Some(i) = v.iter().position(|(k, _)| k.as_bytes() == token.as_bytes()) {
                    v.swap_remove(i);
                    shrink_vec(v);
                }
            }
            Children::Many(m) => {
                m.remove(token.as_bytes());
            }
        }
        self.settle();
    }

    /// Keeps the children for which `keep` says so.
    fn retain(&mut self, mut keep: impl FnMut(&mut Node<T>) -> bool) {
        match self {
            Children::Few(v) => {
                v.retain_mut(|(_, c)| keep(c));
                shrink_vec(v);
            }
            Children::Many(m) => m.retain(|_, c| keep(c)),
        }
        self.settle();
    }

    /// After removals: back to a vector when a map is down to half of [`FEW`] (not
    /// at `FEW`, so that one child coming and going cannot switch it every time);
    /// otherwise gives back a map's room once it is mostly empty.
    fn settle(&mut self) {
        if let Children::Many(m) = self {
            if m.len() <= FEW / 2 {
                let v: Vec<(Token, Node<T>)> = std::mem::take(&mut **m).into_iter().collect();
                *self = Children::Few(v);
            } else if m.len() * 4 < m.capacity() {
                m.shrink_to(m.len() * 2);
            }
        }
    }

    /// Calls `f` with each child.
    fn each<'a>(&'a self, mut f: impl FnMut(&'a str, &'a Node<T>)) {
        match self {
            Children::Few(v) => v.iter().for_each(|(k, c)| f(k.as_str(), c)),
            Children::Many(m) => m.iter().for_each(|(k, c)| f(k.as_str(), c)),
        }
    }
}

impl<T: Clone + Ord> Default for Trie<T> {
    fn default() -> Self {
        Trie::new()
    }
}

impl<T> fmt::Debug for Trie<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trie")
            .field("bindings", &self.len)
            .finish_non_exhaustive()
    }
}

/// A pattern split into the tokens that lead to its node and whether it ends with
/// `>` (then the target goes in that node's `rest`); `None` if it has too many
/// tokens to be stored.
fn split_pattern(pattern: &str) -> Option<(impl Iterator<Item = &str>, bool)> {
    if pattern.bytes().filter(|&b| b == b'.').count() >= MAX_TOKENS {
        return None;
    }
    let (body, full) = if pattern == ">" {
        (None, true)
    } else if let Some(body) = pattern.strip_suffix(".>") {
        (Some(body), true)
    } else {
        (Some(pattern), false)
    };
    Some((body.into_iter().flat_map(|b| b.split('.')), full))
}

/// The first token of a non-empty remainder of a subject and what follows it
/// (`None`: it was the last token).
fn split_first(subject: &str) -> (&str, Option<&str>) {
    match subject.split_once('.') {
        Some((token, after)) => (token, Some(after)),
        None => (subject, None),
    }
}

/// Gives back memory once a vector is mostly empty: without it a node that once had
/// many children or targets would keep their room for ever. Halving at a quarter
/// keeps the cost amortised O(1) per removal.
fn shrink_vec<T>(v: &mut Vec<T>) {
    if v.len() * 4 < v.capacity() {
        v.shrink_to(v.len() * 2);
    }
}

impl<T: Clone + Ord> Trie<T> {
    /// An empty trie.
    pub fn new() -> Self {
        Trie {
            root: Node::default(),
            len: 0,
            nodes: 0,
        }
    }

    /// Binds `pattern` to `target`; true if the binding is new, false if it was
    /// there already (or the pattern has more than [`MAX_TOKENS`] tokens).
    pub fn insert(&mut self, pattern: &str, target: T) -> bool {
        let Some((tokens, full)) = split_pattern(pattern) else {
            return false;
        };
        let mut node = &mut self.root;
        for token in tokens {
            let created;
            (node, created) = if token == "*" {
                let created = node.star.is_none();
                (&mut **node.star.get_or_insert_with(Box::default), created)
            } else {
                node.literal.get_or_insert(token)
            };
            self.nodes += usize::from(created);
        }
        let added = node.add(target, full);
        self.len += usize::from(added);
        added
    }

    /// Unbinds `pattern` from `target`; true if the binding was there. Nodes left
    /// empty are removed, so that bind/unbind churn cannot grow memory.
    pub fn remove(&mut self, pattern: &str, target: &T) -> bool {
        let Some((mut tokens, full)) = split_pattern(pattern) else {
            return false;
        };
        let mut pruned = 0;
        let removed = remove_in(&mut self.root, &mut tokens, full, target, &mut pruned);
        self.len -= usize::from(removed);
        self.nodes -= pruned;
        removed
    }

    /// Removes every binding of `target` (a connection's subscriptions when it
    /// closes); returns how many. Visits the whole trie: O(bindings).
    pub fn remove_target(&mut self, target: &T) -> usize {
        let mut pruned = 0;
        let n = remove_target_in(&mut self.root, target, &mut pruned);
        self.len -= n;
        self.nodes -= pruned;
        n
    }

    /// Removes every binding.
    pub fn clear(&mut self) {
        self.root = Node::default();
        self.len = 0;
        self.nodes = 0;
    }

    /// Number of (pattern, target) bindings.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bindings.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nodes in the trie besides its root: 0 when it is empty, however many bindings
    /// came and went. Memory follows nodes more than bindings (a binding makes one
    /// node per token its pattern does not share with others, up to [`MAX_TOKENS`]),
    /// so this is what to charge against a memory cap; see the type's documentation
    /// for the bytes per node.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// The nodes, counted by walking the trie, to check the running count.
    #[cfg(test)]
    pub(crate) fn counted_nodes(&self) -> usize {
        self.root.descendants()
    }

    /// Replaces the contents of `out` with every target that has at least one
    /// pattern matching `subject`, each once, sorted. `out` is the caller's scratch
    /// vector, reused across calls so that a publish allocates nothing once it has
    /// grown to the largest match set.
    ///
    /// `subject` is taken as valid ([`check_subject`](super::check_subject)); any
    /// other string is matched token by token without panicking.
    pub fn matches_into(&self, subject: &str, out: &mut Vec<T>) {
        out.clear();
        collect(&self.root, Some(subject), out);
        // Several patterns of one target can match (`a.*` and `a.>`), and each node
        // keeps its own list: sort and dedup the few found rather than merging.
        out.sort_unstable();
        out.dedup();
    }

    /// Whether any pattern matches `subject` (REQ's "no responders" test); stops at
    /// the first one found.
    pub fn has_match(&self, subject: &str) -> bool {
        any(&self.root, Some(subject))
    }

    /// Every binding as (pattern, target), in no particular order (for snapshots and
    /// listings). Builds the list at once: O(bindings).
    pub fn iter(&self) -> impl Iterator<Item = (String, &T)> + '_ {
        let mut all = Vec::with_capacity(self.len);
        self.each_list(&mut |pattern, list| {
            all.extend(list.iter().map(|t| (pattern.to_owned(), t)));
        });
        all.into_iter()
    }

    /// The patterns bound to `target`, in no particular order. O(bindings).
    pub fn patterns_of(&self, target: &T) -> Vec<String> {
        let mut patterns = Vec::new();
        self.each_list(&mut |pattern, list| {
            if list.binary_search(target).is_ok() {
                patterns.push(pattern.to_owned());
            }
        });
        patterns
    }

    /// Calls `f` with each non-empty target list and the pattern it belongs to.
    fn each_list<'a>(&'a self, f: &mut dyn FnMut(&str, &'a [T])) {
        let mut path = String::new();
        visit(&self.root, &mut path, 0, f);
    }
}

/// Walks `tokens` down from `node` and takes `target` off the list at the end;
/// prunes the children it leaves empty on the way back. Recursion depth is the
/// pattern's token count, at most [`MAX_TOKENS`].
fn remove_in<'p, T: Ord>(
    node: &mut Node<T>,
    tokens: &mut impl Iterator<Item = &'p str>,
    full: bool,
    target: &T,
    pruned: &mut usize,
) -> bool {
    match tokens.next() {
        None => node.take(target, full),
        Some("*") => {
            let Some(child) = node.star.as_deref_mut() else {
                return false;
            };
            let removed = remove_in(child, tokens, full, target, pruned);
            if child.is_empty() {
                node.star = None;
                *pruned += 1;
            }
            removed
        }
        Some(token) => {
            let Some(child) = node.literal.get_mut(token) else {
                return false;
            };
            let removed = remove_in(child, tokens, full, target, pruned);
            if child.is_empty() {
                node.literal.remove(token);
                *pruned += 1;
            }
            removed
        }
    }
}

/// Takes `target` off every list under `node` and prunes what is left empty (a node
/// is pruned only once its own children are, so each prune is one node).
fn remove_target_in<T: Ord>(node: &mut Node<T>, target: &T, pruned: &mut usize) -> usize {
    let mut n = usize::from(node.take(target, false)) + usize::from(node.take(target, true));
    if let Some(child) = node.star.as_deref_mut() {
        n += remove_target_in(child, target, pruned);
        if child.is_empty() {
            node.star = None;
            *pruned += 1;
        }
    }
    node.literal.retain(|child| {
        n += remove_target_in(child, target, pruned);
        let keep = !child.is_empty();
        *pruned += usize::from(!keep);
        keep
    });
    n
}

/// Appends the targets under `node` that match `rest`, the subject's tokens still to
/// match (`None`: all were). Recurses only into children that exist, so the depth is
/// bounded by the trie's, whatever the subject.
fn collect<T: Clone>(node: &Node<T>, rest: Option<&str>, out: &mut Vec<T>) {
    let Some(rest) = rest else {
        out.extend_from_slice(node.here());
        return;
    };
    // At least one token is left: `>` after this node matches.
    out.extend_from_slice(node.rest());
    let (token, after) = split_first(rest);
    if let Some(child) = node.literal.get(token) {
        collect(child, after, out);
    }
    if let Some(child) = node.star.as_deref() {
        collect(child, after, out);
    }
}

/// Whether anything under `node` matches `rest` (as in [`collect`]).
fn any<T>(node: &Node<T>, rest: Option<&str>) -> bool {
    let Some(rest) = rest else {
        return !node.here().is_empty();
    };
    if !node.rest().is_empty() {
        return true;
    }
    let (token, after) = split_first(rest);
    node.literal.get(token).is_some_and(|c| any(c, after))
        || node.star.as_deref().is_some_and(|c| any(c, after))
}

/// Calls `f` for each non-empty list under `node`, whose pattern prefix is `path`
/// (its `depth` tokens joined by `.`; tokens can be empty in odd input, so the depth
/// and not the path's length says whether a `.` goes before the next one).
fn visit<'a, T>(
    node: &'a Node<T>,
    path: &mut String,
    depth: usize,
    f: &mut dyn FnMut(&str, &'a [T]),
) {
    if !node.here().is_empty() {
        f(path, node.here());
    }
    let mut child = |path: &mut String, token: &str, next: Option<&'a Node<T>>| {
        let len = path.len();
        if depth > 0 {
            path.push('.');
        }
        path.push_str(token);
        match next {
            Some(next) => visit(next, path, depth + 1, f),
            None => f(path, node.rest()),
        }
        path.truncate(len);
    };
    if !node.rest().is_empty() {
        child(path, ">", None);
    }
    if let Some(star) = node.star.as_deref() {
        child(path, "*", Some(star));
    }
    node.literal
        .each(|token, next| child(path, token, Some(next)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size the type's documentation promises, for the target types the server
    /// uses (a shared queue name, a subscription key).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn node_is_64_bytes() {
        assert_eq!(size_of::<Node<std::rc::Rc<str>>>(), 64);
        assert_eq!(size_of::<Node<(u64, u32)>>(), 64);
        assert_eq!(size_of::<Token>(), 24);
    }

    /// A node switches its children to a map past `FEW` and back at half of it.
    #[test]
    fn children_switch_to_a_map_and_back() {
        let mut trie = Trie::new();
        let wide = |node: &Node<u32>| matches!(node.literal, Children::Many(_));
        for i in 0..=FEW as u32 {
            assert!(!wide(&trie.root), "{i}");
            trie.insert(&format!("t{i}.x"), i);
        }
        assert!(wide(&trie.root));
        let mut out = Vec::new();
        for i in (0..=FEW as u32).rev() {
            trie.matches_into(&format!("t{i}.x"), &mut out);
            assert_eq!(out, [i]);
            assert!(trie.remove(&format!("t{i}.x"), &i));
            // `i` children are left.
            assert_eq!(wide(&trie.root), i as usize > FEW / 2, "{i}");
        }
        assert_eq!(trie.node_count(), 0);
    }
}
