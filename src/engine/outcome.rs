//! Three-valued logic over [`CheckOutcome`]: `No < Conditional < Has`.
//!
//! Union is the maximum and intersection the minimum; negation swaps `Has` and `No` and keeps
//! `Conditional`. When the result is conditional, its missing parameters are the union of the
//! missing parameters of the conditional operands (sorted, deduplicated).

use super::CheckOutcome;

/// Merges two sorted, deduplicated lists into one.
pub(crate) fn merge_missing(a: Vec<String>, b: Vec<String>) -> Vec<String> {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() || a == b {
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    b.next();
                    a.next()
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        if let Some(s) = next {
            out.push(s);
        }
    }
    out
}

/// `a ∪ b`: `Has` if either is, else conditional if either is, else `No`.
pub(crate) fn union(a: CheckOutcome, b: CheckOutcome) -> CheckOutcome {
    use CheckOutcome::*;
    match (a, b) {
        (Has, _) | (_, Has) => Has,
        (Conditional { missing: x }, Conditional { missing: y }) => Conditional {
            missing: merge_missing(x, y),
        },
        (c @ Conditional { .. }, No) | (No, c @ Conditional { .. }) => c,
        (No, No) => No,
    }
}

/// `a ∩ b`: `No` if either is, else `Has` if both are, else conditional.
pub(crate) fn intersect(a: CheckOutcome, b: CheckOutcome) -> CheckOutcome {
    use CheckOutcome::*;
    match (a, b) {
        (No, _) | (_, No) => No,
        (Conditional { missing: x }, Conditional { missing: y }) => Conditional {
            missing: merge_missing(x, y),
        },
        (c @ Conditional { .. }, Has) | (Has, c @ Conditional { .. }) => c,
        (Has, Has) => Has,
    }
}

/// Complement: `Has ↔ No`, conditional stays conditional (on the same parameters).
pub(crate) fn negate(a: CheckOutcome) -> CheckOutcome {
    match a {
        CheckOutcome::Has => CheckOutcome::No,
        CheckOutcome::No => CheckOutcome::Has,
        c @ CheckOutcome::Conditional { .. } => c,
    }
}

/// `a − b` = `a ∩ ¬b`.
pub(crate) fn exclude(a: CheckOutcome, b: CheckOutcome) -> CheckOutcome {
    intersect(a, negate(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckOutcome::*;

    fn cond(names: &[&str]) -> CheckOutcome {
        Conditional {
            missing: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn union_prefers_has_then_conditional() {
        assert_eq!(union(No, Has), Has);
        assert_eq!(union(cond(&["a"]), Has), Has);
        assert_eq!(union(cond(&["a"]), No), cond(&["a"]));
        assert_eq!(union(cond(&["b"]), cond(&["a", "b"])), cond(&["a", "b"]));
        assert_eq!(union(No, No), No);
    }

    #[test]
    fn intersection_prefers_no_then_conditional() {
        assert_eq!(intersect(No, Has), No);
        assert_eq!(intersect(cond(&["a"]), No), No);
        assert_eq!(intersect(cond(&["a"]), Has), cond(&["a"]));
        assert_eq!(intersect(cond(&["c"]), cond(&["a"])), cond(&["a", "c"]));
        assert_eq!(intersect(Has, Has), Has);
    }

    #[test]
    fn exclusion_follows_the_three_valued_table() {
        assert_eq!(exclude(No, No), No);
        assert_eq!(exclude(Has, Has), No);
        assert_eq!(exclude(Has, No), Has);
        assert_eq!(exclude(Has, cond(&["x"])), cond(&["x"]));
        assert_eq!(exclude(cond(&["y"]), No), cond(&["y"]));
        assert_eq!(exclude(cond(&["y"]), cond(&["x"])), cond(&["x", "y"]));
        assert_eq!(exclude(cond(&["y"]), Has), No);
    }

    #[test]
    fn merge_keeps_sorted_unique() {
        let m = merge_missing(
            vec!["a".into(), "c".into(), "e".into()],
            vec!["b".into(), "c".into(), "f".into()],
        );
        assert_eq!(m, ["a", "b", "c", "e", "f"]);
    }
}
