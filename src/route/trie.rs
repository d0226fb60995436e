//! The pattern trie: patterns bound to targets, and "which targets match this
//! subject" in time that follows the subject's tokens, not the number of bindings.
//!
//! One node per distinct pattern prefix, as in NATS's sublist: a node has its literal
//! children by token, at most one `*` child, the targets of patterns that end at it,
//! and the targets of patterns that end with `>` right after it. A match walks the
//! subject's tokens down the literal and `*` branches only, so its cost is the number
//! of nodes on those paths (at most a few per token with real pattern sets) plus the
//! targets it finds; bindings elsewhere are never looked at.

use std::collections::HashMap;
use std::fmt;

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
pub struct Trie<T> {
    root: Node<T>,
    /// Bindings held, kept so that `len` is O(1).
    len: usize,
}

/// One pattern prefix.
struct Node<T> {
    /// Children by literal token. A hash map because a node can have very many (the
    /// first token of every binding's pattern hangs off the root); std's default
    /// hasher is keyed per map, so clients cannot choose tokens that collide. An empty
    /// map allocates nothing, and a lookup in one does not hash.
    literal: HashMap<Box<str>, Node<T>>,
    /// The `*` child, boxed so that nodes without one (most) pay a pointer.
    star: Option<Box<Node<T>>>,
    /// Targets of patterns that end at this node, sorted (binary search, no
    /// duplicates).
    here: Vec<T>,
    /// Targets of patterns that end with `>` after this node, sorted.
    rest: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            star: None,
            here: Vec::new(),
            rest: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    /// Whether the node holds nothing, so that its parent can drop it.
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.star.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }

    /// Nodes below this one.
    fn descendants(&self) -> usize {
        let star = self.star.as_deref().map_or(0, |c| 1 + c.descendants());
        star + self
            .literal
            .values()
            .map(|c| 1 + c.descendants())
            .sum::<usize>()
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

/// Gives back memory once a collection is mostly empty: without it a node that once
/// had many children or targets would keep their room for ever. Halving at a quarter
/// keeps the cost amortised O(1) per removal.
fn shrink_vec<T>(v: &mut Vec<T>) {
    if v.len() * 4 < v.capacity() {
        v.shrink_to(v.len() * 2);
    }
}

fn shrink_map<T>(m: &mut HashMap<Box<str>, Node<T>>) {
    if m.len() * 4 < m.capacity() {
        m.shrink_to(m.len() * 2);
    }
}

/// Removes `target` from a sorted list; whether it was there.
fn remove_sorted<T: Ord>(list: &mut Vec<T>, target: &T) -> bool {
    match list.binary_search(target) {
        Ok(i) => {
            list.remove(i);
            shrink_vec(list);
            true
        }
        Err(_) => false,
    }
}

impl<T: Clone + Ord> Trie<T> {
    /// An empty trie.
    pub fn new() -> Self {
        Trie {
            root: Node::default(),
            len: 0,
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
            node = if token == "*" {
                node.star.get_or_insert_with(Box::default)
            } else {
                node.literal.entry(Box::from(token)).or_default()
            };
        }
        let list = if full { &mut node.rest } else { &mut node.here };
        match list.binary_search(&target) {
            Ok(_) => false,
            Err(i) => {
                list.insert(i, target);
                self.len += 1;
                true
            }
        }
    }

    /// Unbinds `pattern` from `target`; true if the binding was there. Nodes left
    /// empty are removed, so that bind/unbind churn cannot grow memory.
    pub fn remove(&mut self, pattern: &str, target: &T) -> bool {
        let Some((mut tokens, full)) = split_pattern(pattern) else {
            return false;
        };
        let removed = remove_in(&mut self.root, &mut tokens, full, target);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Removes every binding of `target` (a connection's subscriptions when it
    /// closes); returns how many. Visits the whole trie: O(bindings).
    pub fn remove_target(&mut self, target: &T) -> usize {
        let n = remove_target_in(&mut self.root, target);
        self.len -= n;
        n
    }

    /// Removes every binding.
    pub fn clear(&mut self) {
        self.root = Node::default();
        self.len = 0;
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
    /// came and went. O(nodes); for tests and diagnostics.
    pub fn node_count(&self) -> usize {
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
) -> bool {
    match tokens.next() {
        None => remove_sorted(if full { &mut node.rest } else { &mut node.here }, target),
        Some("*") => {
            let Some(child) = node.star.as_deref_mut() else {
                return false;
            };
            let removed = remove_in(child, tokens, full, target);
            if child.is_empty() {
                node.star = None;
            }
            removed
        }
        Some(token) => {
            let Some(child) = node.literal.get_mut(token) else {
                return false;
            };
            let removed = remove_in(child, tokens, full, target);
            if child.is_empty() {
                node.literal.remove(token);
                shrink_map(&mut node.literal);
            }
            removed
        }
    }
}

/// Takes `target` off every list under `node` and prunes what is left empty.
fn remove_target_in<T: Ord>(node: &mut Node<T>, target: &T) -> usize {
    let mut n = usize::from(remove_sorted(&mut node.here, target))
        + usize::from(remove_sorted(&mut node.rest, target));
    if let Some(child) = node.star.as_deref_mut() {
        n += remove_target_in(child, target);
        if child.is_empty() {
            node.star = None;
        }
    }
    let before = node.literal.len();
    node.literal.retain(|_, child| {
        n += remove_target_in(child, target);
        !child.is_empty()
    });
    if node.literal.len() < before {
        shrink_map(&mut node.literal);
    }
    n
}

/// Appends the targets under `node` that match `rest`, the subject's tokens still to
/// match (`None`: all were). Recurses only into children that exist, so the depth is
/// bounded by the trie's, whatever the subject.
fn collect<T: Clone>(node: &Node<T>, rest: Option<&str>, out: &mut Vec<T>) {
    let Some(rest) = rest else {
        out.extend_from_slice(&node.here);
        return;
    };
    // At least one token is left: `>` after this node matches.
    out.extend_from_slice(&node.rest);
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
        return !node.here.is_empty();
    };
    if !node.rest.is_empty() {
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
    if !node.here.is_empty() {
        f(path, &node.here);
    }
    let star = node.star.as_deref().map(|c| ("*", Some(c)));
    let rest = (!node.rest.is_empty()).then_some((">", None));
    let literal = node.literal.iter().map(|(t, c)| (&**t, Some(c)));
    for (token, child) in rest.into_iter().chain(star).chain(literal) {
        let len = path.len();
        if depth > 0 {
            path.push('.');
        }
        path.push_str(token);
        match child {
            Some(child) => visit(child, path, depth + 1, f),
            None => f(path, &node.rest),
        }
        path.truncate(len);
    }
}
