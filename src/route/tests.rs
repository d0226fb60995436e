//! Unit tests of subject matching: the rules as a table, every rejection with its
//! text, and the trie checked against the reference matcher on random bindings.

use std::collections::BTreeSet;

use super::*;
use crate::test_rng::Rng;

/// (pattern, subject, matches): every rule of `protocol.md`, each way round.
const TABLE: &[(&str, &str, bool)] = &[
    // Literal tokens match exactly, whole tokens only, case-sensitively.
    ("a", "a", true),
    ("a", "b", false),
    ("a.b.c", "a.b.c", true),
    ("a.b", "a.b.c", false),
    ("a.b.c", "a.b", false),
    ("ab", "a", false),
    ("a", "ab", false),
    ("a.b", "ab", false),
    ("Orders.eu", "orders.eu", false),
    ("orders.EU", "orders.eu", false),
    ("café.crème", "café.crème", true),
    // Tokens of 22 bytes and fewer are kept inline in the trie, longer ones apart.
    ("twenty-two-bytes-token.*", "twenty-two-bytes-token.x", true),
    (
        "twenty-two-bytes-token.*",
        "twenty-two-bytes-tokex.x",
        false,
    ),
    (
        "twenty-three-bytes-tokn.x",
        "twenty-three-bytes-tokn.x",
        true,
    ),
    (
        "twenty-three-bytes-tokn.x",
        "twenty-three-bytes-tokm.x",
        false,
    ),
    (
        "x.a-token-of-well-over-twenty-two-bytes",
        "x.a-token-of-well-over-twenty-two-bytes",
        true,
    ),
    // `*` is exactly one token: never none, never two, never part of one.
    ("*", "a", true),
    ("*", "a.b", false),
    ("a.*", "a.b", true),
    ("a.*", "a.bcd", true),
    ("a.*", "a", false),
    ("a.*", "a.b.c", false),
    ("*.b", "a.b", true),
    ("*.b", "a.c", false),
    ("*.c", "ab.c", true),
    ("a.*.c", "a.b.c", true),
    ("a.*.c", "a.c", false),
    ("a.*.c", "a.b.b.c", false),
    ("*.*", "a.b", true),
    ("*.*", "a", false),
    ("*.*", "a.b.c", false),
    ("orders.*.created", "orders.eu.created", true),
    ("orders.*.created", "orders.eu.deleted", false),
    // `>` is one or more trailing tokens: `a.>` does not match `a`.
    (">", "a", true),
    (">", "a.b.c", true),
    ("a.>", "a", false),
    ("a.>", "a.b", true),
    ("a.>", "a.b.c", true),
    ("a.>", "b.c", false),
    ("a.>", "ab.c", false),
    ("a.b.>", "a.b", false),
    ("a.b.>", "a.b.c.d", true),
    ("*.>", "a", false),
    ("*.>", "a.b", true),
    ("a.*.>", "a.b", false),
    ("a.*.>", "a.b.c", true),
    ("a.*.>", "a.b.c.d", true),
    ("orders.>", "orders.eu.created", true),
];

/// Every row of the table, three ways: the reference matcher, a trie holding just that
/// binding (`matches_into` and `has_match`), and both strings pass their checks.
#[test]
fn pattern_semantics_table() {
    for &(pattern, subject, expected) in TABLE {
        assert_eq!(check_pattern(pattern), Ok(()), "{pattern}");
        assert_eq!(check_subject(subject), Ok(()), "{subject}");
        assert_eq!(matches(pattern, subject), expected, "{pattern} ~ {subject}");
        let mut trie = Trie::new();
        assert!(trie.insert(pattern, 7u32));
        let mut out = vec![1, 2, 3];
        trie.matches_into(subject, &mut out);
        let want: &[u32] = if expected { &[7] } else { &[] };
        assert_eq!(out, want, "trie: {pattern} ~ {subject}");
        assert_eq!(trie.has_match(subject), expected, "{pattern} ~ {subject}");
    }
}

/// Each rejection of `check_subject` and `check_pattern`, with its value and the text
/// an ERROR frame carries.
#[test]
fn every_rejection_with_its_text() {
    use SubjectError::*;
    let long = "a".repeat(MAX_SUBJECT_LEN + 1);
    // (input, error as a subject, error as a pattern, text of the subject's error)
    let cases: &[(&str, Option<SubjectError>, Option<SubjectError>, &str)] = &[
        ("", Some(Empty), Some(Empty), "empty"),
        (
            &long,
            Some(TooLong { len: 256 }),
            Some(TooLong { len: 256 }),
            "256 bytes, longer than 255",
        ),
        (
            ".a",
            Some(EmptyToken { at: 0 }),
            Some(EmptyToken { at: 0 }),
            "empty token at byte 0",
        ),
        (
            "a.",
            Some(EmptyToken { at: 2 }),
            Some(EmptyToken { at: 2 }),
            "empty token at byte 2",
        ),
        (
            "a.b..c",
            Some(EmptyToken { at: 4 }),
            Some(EmptyToken { at: 4 }),
            "empty token at byte 4",
        ),
        (
            ".",
            Some(EmptyToken { at: 0 }),
            Some(EmptyToken { at: 0 }),
            "empty token at byte 0",
        ),
        (
            "a b",
            Some(Space { at: 1 }),
            Some(Space { at: 1 }),
            "space at byte 1",
        ),
        (
            "a.b\0",
            Some(Control { byte: 0, at: 3 }),
            Some(Control { byte: 0, at: 3 }),
            "control character 0x00 at byte 3",
        ),
        (
            "a\tb",
            Some(Control { byte: 9, at: 1 }),
            Some(Control { byte: 9, at: 1 }),
            "control character 0x09 at byte 1",
        ),
        (
            "x.\u{7f}",
            Some(Control { byte: 127, at: 2 }),
            Some(Control { byte: 127, at: 2 }),
            "control character 0x7f at byte 2",
        ),
        (
            "\n",
            Some(Control { byte: 10, at: 0 }),
            Some(Control { byte: 10, at: 0 }),
            "control character 0x0a at byte 0",
        ),
        (
            "a*",
            Some(WildcardInsideToken {
                wildcard: '*',
                at: 1,
            }),
            Some(WildcardInsideToken {
                wildcard: '*',
                at: 1,
            }),
            "'*' inside a token at byte 1",
        ),
        (
            "a.*b",
            Some(WildcardInsideToken {
                wildcard: '*',
                at: 2,
            }),
            Some(WildcardInsideToken {
                wildcard: '*',
                at: 2,
            }),
            "'*' inside a token at byte 2",
        ),
        (
            ">b",
            Some(WildcardInsideToken {
                wildcard: '>',
                at: 0,
            }),
            Some(WildcardInsideToken {
                wildcard: '>',
                at: 0,
            }),
            "'>' inside a token at byte 0",
        ),
        (
            "a.b>",
            Some(WildcardInsideToken {
                wildcard: '>',
                at: 3,
            }),
            Some(WildcardInsideToken {
                wildcard: '>',
                at: 3,
            }),
            "'>' inside a token at byte 3",
        ),
        (
            "**",
            Some(WildcardInsideToken {
                wildcard: '*',
                at: 0,
            }),
            Some(WildcardInsideToken {
                wildcard: '*',
                at: 0,
            }),
            "'*' inside a token at byte 0",
        ),
        (
            "*",
            Some(WildcardInSubject { at: 0 }),
            None,
            "wildcard in a publish subject at byte 0",
        ),
        (
            "a.>",
            Some(WildcardInSubject { at: 2 }),
            None,
            "wildcard in a publish subject at byte 2",
        ),
        (
            "a.*.b",
            Some(WildcardInSubject { at: 2 }),
            None,
            "wildcard in a publish subject at byte 2",
        ),
        (
            "a.>.b",
            Some(WildcardInSubject { at: 2 }),
            Some(FullWildcardNotLast { at: 2 }),
            "wildcard in a publish subject at byte 2",
        ),
        (
            ">.a",
            Some(WildcardInSubject { at: 0 }),
            Some(FullWildcardNotLast { at: 0 }),
            "wildcard in a publish subject at byte 0",
        ),
        // Valid: the first problem from the left is reported, so these have none.
        (&long[..MAX_SUBJECT_LEN], None, None, ""),
        ("a.b", None, None, ""),
        ("café.€", None, None, ""),
    ];
    for (input, as_subject, as_pattern, text) in cases {
        assert_eq!(check_subject(input).err(), *as_subject, "subject {input:?}");
        assert_eq!(check_pattern(input).err(), *as_pattern, "pattern {input:?}");
        if let Some(e) = as_subject {
            assert_eq!(e.to_string(), *text, "{input:?}");
        }
    }
    assert_eq!(
        FullWildcardNotLast { at: 2 }.to_string(),
        "'>' must be the last token (byte 2)"
    );
    for pattern in ["*", ">", "a.*", "*.b", "a.>", "*.*.>", "a.*.c.>"] {
        assert_eq!(check_pattern(pattern), Ok(()), "{pattern}");
    }
}

/// The first problem from the left is the one reported.
#[test]
fn first_problem_wins() {
    assert_eq!(check_pattern("a b..c*"), Err(SubjectError::Space { at: 1 }));
    assert_eq!(
        check_subject("a..*"),
        Err(SubjectError::EmptyToken { at: 2 })
    );
    assert_eq!(
        check_subject("*.a b"),
        Err(SubjectError::WildcardInSubject { at: 0 })
    );
}

/// Several patterns of one target matching one subject give it once; targets come
/// sorted; the scratch vector's old contents go.
#[test]
fn overlapping_patterns_give_each_target_once() {
    let mut trie = Trie::new();
    for (pattern, target) in [
        ("orders.eu.created", "audit"),
        ("orders.*.created", "audit"),
        ("orders.>", "audit"),
        (">", "audit"),
        ("orders.*.created", "mail"),
        ("orders.eu.*", "search"),
        ("orders.us.*", "us-only"),
    ] {
        assert!(trie.insert(pattern, target));
    }
    assert!(
        !trie.insert("orders.>", "audit"),
        "a binding is stored once"
    );
    assert_eq!(trie.len(), 7);
    let mut out = vec!["stale"];
    trie.matches_into("orders.eu.created", &mut out);
    assert_eq!(out, ["audit", "mail", "search"]);
    let mut patterns = trie.patterns_of(&"audit");
    patterns.sort();
    assert_eq!(
        patterns,
        [">", "orders.*.created", "orders.>", "orders.eu.created"]
    );
    assert_eq!(trie.remove_target(&"audit"), 4);
    trie.matches_into("orders.eu.created", &mut out);
    assert_eq!(out, ["mail", "search"]);
    assert_eq!(trie.len(), 3);
}

/// Removing what was never bound changes nothing and creates no node; removing every
/// binding, one by one or by target, leaves no node behind.
#[test]
fn removing_everything_leaves_an_empty_trie() {
    let patterns = [
        "a", "a.b", "a.b.c", "a.*", "a.*.c", "*", "*.>", ">", "a.>", "a.b.>", "*.*.*",
    ];
    let mut trie = Trie::new();
    assert!(!trie.remove("x.y.z", &1u64));
    assert!(!trie.remove("*.>", &1u64));
    assert_eq!(trie.node_count(), 0);
    for round in 0..3u64 {
        for (i, p) in patterns.iter().enumerate() {
            for t in 0..3u64 {
                assert!(trie.insert(p, t * 100 + i as u64 + round));
            }
        }
        assert_eq!(trie.len(), patterns.len() * 3);
        assert!(trie.node_count() > 0);
        assert_eq!(trie.node_count(), trie.counted_nodes());
        assert!(!trie.remove("a.b", &999));
        assert!(!trie.remove("a.b.c.d", &0));
        if round == 1 {
            for t in 0..3u64 {
                let removed: usize = (0..patterns.len() as u64)
                    .map(|i| trie.remove_target(&(t * 100 + i + round)))
                    .sum();
                assert_eq!(removed, patterns.len());
            }
        } else {
            for (i, p) in patterns.iter().enumerate().rev() {
                for t in 0..3u64 {
                    assert!(trie.remove(p, &(t * 100 + i as u64 + round)));
                    assert!(!trie.remove(p, &(t * 100 + i as u64 + round)));
                }
            }
        }
        assert!(trie.is_empty());
        assert_eq!(trie.len(), 0);
        assert_eq!(trie.node_count(), 0, "round {round}");
        assert_eq!(trie.counted_nodes(), 0, "round {round}");
        assert_eq!(trie.iter().count(), 0);
    }
}

/// The longest valid pattern (128 one-byte tokens in 255 bytes) is stored and
/// matched; one token more is refused rather than deepening the trie; a subject of
/// any length is matched without trouble.
#[test]
fn token_limit() {
    let longest = vec!["a"; MAX_TOKENS].join(".");
    assert_eq!(longest.len(), MAX_SUBJECT_LEN);
    assert_eq!(check_pattern(&longest), Ok(()));
    let mut trie = Trie::new();
    assert!(trie.insert(&longest, 1u8));
    assert!(trie.has_match(&longest));
    let deeper = format!("{longest}.a");
    assert!(!trie.insert(&deeper, 1));
    assert!(!trie.remove(&deeper, &1));
    assert!(!trie.has_match(&deeper));
    let huge = vec!["a"; 100_000].join(".");
    assert!(!trie.insert(&huge, 2));
    assert!(trie.insert(">", 3));
    let mut out = Vec::new();
    trie.matches_into(&huge, &mut out);
    assert_eq!(out, [3]);
    assert!(trie.remove(&longest, &1));
    assert!(trie.remove(">", &3));
    assert_eq!(trie.node_count(), 0);
}

/// Tokens the random tests draw from: few, so that patterns overlap a lot.
const TOKENS: &[&str] = &["a", "b", "c", "dd", "é"];
/// More tokens than a node keeps in its vector, so that nodes switch to a map and
/// back as bindings come and go.
const WIDE: &[&str] = &[
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "mm", "nn", "oo", "pp", "q", "r",
    "s", "t",
];

fn random_subject(rng: &mut Rng, alphabet: &[&'static str]) -> String {
    let n = 1 + rng.index(4);
    (0..n)
        .map(|_| alphabet[rng.index(alphabet.len())])
        .collect::<Vec<_>>()
        .join(".")
}

fn random_pattern(rng: &mut Rng, alphabet: &[&'static str]) -> String {
    let n = 1 + rng.index(4);
    let mut tokens: Vec<&str> = (0..n)
        .map(|_| match rng.below(10) {
            0..=2 => "*",
            _ => alphabet[rng.index(alphabet.len())],
        })
        .collect();
    if rng.below(5) == 0
        && let Some(last) = tokens.last_mut()
    {
        *last = ">";
    }
    tokens.join(".")
}

/// What the trie must answer, from the bindings and the reference matcher alone.
fn brute_force(model: &BTreeSet<(String, u8)>, subject: &str) -> Vec<u8> {
    let found: BTreeSet<u8> = model
        .iter()
        .filter(|(p, _)| matches(p, subject))
        .map(|&(_, t)| t)
        .collect();
    found.into_iter().collect()
}

/// Checks every observable of `trie` against `model`, on `probes` random subjects.
fn check_against(
    trie: &Trie<u8>,
    model: &BTreeSet<(String, u8)>,
    rng: &mut Rng,
    alphabet: &[&'static str],
    probes: usize,
) {
    assert_eq!(trie.len(), model.len());
    assert_eq!(trie.is_empty(), model.is_empty());
    assert_eq!(trie.node_count(), trie.counted_nodes());
    let mut out = Vec::new();
    for _ in 0..probes {
        let subject = random_subject(rng, alphabet);
        trie.matches_into(&subject, &mut out);
        let want = brute_force(model, &subject);
        assert_eq!(out, want, "subject {subject}");
        assert_eq!(trie.has_match(&subject), !want.is_empty(), "{subject}");
    }
}

/// Random inserts and removes (one binding, or a whole target) over a small token
/// alphabet: after each, `matches_into` and `has_match` equal a brute-force filter of
/// all bindings by `matches`; listings equal the bindings; emptied, no node is left.
#[test]
fn trie_equals_brute_force_on_random_bindings() {
    for seed in 1..=12u64 {
        let alphabet = if seed % 2 == 0 { WIDE } else { TOKENS };
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut trie = Trie::new();
        let mut model: BTreeSet<(String, u8)> = BTreeSet::new();
        for step in 0..1500 {
            match rng.below(100) {
                0..=54 => {
                    let (p, t) = (random_pattern(&mut rng, alphabet), rng.below(8) as u8);
                    assert_eq!(trie.insert(&p, t), model.insert((p.clone(), t)), "{p}");
                }
                55..=84 if !model.is_empty() => {
                    let pick = rng.index(model.len());
                    let Some((p, t)) = model.iter().nth(pick).cloned() else {
                        continue;
                    };
                    assert!(trie.remove(&p, &t), "{p} {t}");
                    model.remove(&(p, t));
                }
                85..=97 => {
                    let (p, t) = (random_pattern(&mut rng, alphabet), rng.below(8) as u8);
                    assert_eq!(trie.remove(&p, &t), model.remove(&(p.clone(), t)));
                }
                _ => {
                    let t = rng.below(8) as u8;
                    let before = model.len();
                    model.retain(|&(_, m)| m != t);
                    assert_eq!(trie.remove_target(&t), before - model.len());
                }
            }
            check_against(&trie, &model, &mut rng, alphabet, 4);
            if step % 100 == 0 {
                let listed: BTreeSet<(String, u8)> = trie.iter().map(|(p, &t)| (p, t)).collect();
                assert_eq!(listed, model, "seed {seed} step {step}");
                assert_eq!(trie.iter().count(), model.len());
                for t in 0..8u8 {
                    let mut mine = trie.patterns_of(&t);
                    mine.sort();
                    let want: Vec<String> = model
                        .iter()
                        .filter(|(_, m)| *m == t)
                        .map(|(p, _)| p.clone())
                        .collect();
                    assert_eq!(mine, want);
                }
            }
        }
        check_against(&trie, &model, &mut rng, alphabet, 500);
        let all: Vec<(String, u8)> = model.iter().cloned().collect();
        for (p, t) in all {
            assert!(trie.remove(&p, &t));
        }
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 0, "seed {seed}");
        assert_eq!(trie.counted_nodes(), 0, "seed {seed}");
    }
}

/// Bind/unbind churn keeps the node count at what the live bindings need.
#[test]
fn churn_does_not_grow_the_trie() {
    let mut rng = Rng(0xC0FFEE);
    let mut trie = Trie::new();
    let steady: Vec<String> = (0..50).map(|_| random_pattern(&mut rng, WIDE)).collect();
    for (i, p) in steady.iter().enumerate() {
        trie.insert(p, i as u32);
    }
    let nodes = trie.node_count();
    for round in 0..2000u32 {
        let p = format!("churn.{round}.{}", random_pattern(&mut rng, WIDE));
        assert!(trie.insert(&p, 1_000_000 + round));
        assert!(trie.remove(&p, &(1_000_000 + round)));
        assert_eq!(trie.node_count(), nodes, "{p}");
        assert_eq!(trie.counted_nodes(), nodes, "{p}");
    }
    assert_eq!(trie.len(), steady.len());
}

/// Any string at all, valid or not: the trie never panics, agrees with the reference
/// matcher token by token, and lists each pattern back exactly as it was given.
#[test]
fn odd_strings_do_not_upset_the_trie() {
    const PIECES: &[&str] = &[
        "a", "b", ".", "*", ">", " ", "", "\0", "é", "..", ".>", "*.",
    ];
    let odd = |rng: &mut Rng| -> String {
        (0..rng.index(6))
            .map(|_| PIECES[rng.index(PIECES.len())])
            .collect()
    };
    let mut rng = Rng(42);
    let mut trie = Trie::new();
    let mut model = BTreeSet::new();
    for _ in 0..3000 {
        let p = odd(&mut rng);
        let t = rng.below(4) as u8;
        if rng.below(3) == 0 {
            assert_eq!(trie.remove(&p, &t), model.remove(&(p.clone(), t)));
        } else {
            assert_eq!(trie.insert(&p, t), model.insert((p.clone(), t)), "{p:?}");
        }
        let mut out = Vec::new();
        for _ in 0..3 {
            let s = odd(&mut rng);
            trie.matches_into(&s, &mut out);
            assert_eq!(out, brute_force(&model, &s), "{s:?}");
            assert_eq!(trie.has_match(&s), !out.is_empty());
        }
        assert_eq!(trie.node_count(), trie.counted_nodes());
    }
    let listed: BTreeSet<(String, u8)> = trie.iter().map(|(p, &t)| (p, t)).collect();
    assert_eq!(listed, model);
    for t in 0..4 {
        trie.remove_target(&t);
    }
    assert_eq!(trie.node_count(), 0);
}

/// Targets can be shared names, as the server's queue names are.
#[test]
fn rc_str_targets() {
    use std::rc::Rc;
    let audit: Rc<str> = Rc::from("audit");
    let mut trie: Trie<Rc<str>> = Trie::default();
    trie.insert("a.>", Rc::clone(&audit));
    trie.insert("a.*", Rc::from("mail"));
    let mut out = Vec::new();
    trie.matches_into("a.b", &mut out);
    assert_eq!(out, [Rc::from("audit"), Rc::from("mail")]);
    assert!(trie.remove("a.>", &Rc::from("audit")));
    out.clear();
    assert_eq!(Rc::strong_count(&audit), 1, "the trie let go of its clone");
    assert_eq!(format!("{trie:?}"), "Trie { bindings: 1, .. }");
}
