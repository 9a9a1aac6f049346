//! Unit tests of the linearizability checker used by the simulator.

#[path = "raft_support/mod.rs"]
mod support;

use support::lin::{check_history, Op, OpKind};

fn put(client: usize, key: &str, v: &str, invoke: u64, ret: Option<u64>) -> Op {
    Op { client, key: key.into(), kind: OpKind::Put(v.into()), invoke, ret }
}

fn get(client: usize, key: &str, v: Option<&str>, invoke: u64, ret: u64) -> Op {
    Op { client, key: key.into(), kind: OpKind::Get(v.map(Into::into)), invoke, ret: Some(ret) }
}

#[test]
fn sequential_history_is_linearizable() {
    let h = vec![
        get(0, "k", None, 1, 2),
        put(0, "k", "a", 3, Some(4)),
        get(1, "k", Some("a"), 5, 6),
        put(1, "k", "b", 7, Some(8)),
        get(0, "k", Some("b"), 9, 10),
    ];
    assert!(check_history(&h).is_ok());
}

#[test]
fn stale_read_after_write_is_rejected() {
    // put(a) completes, then a later get sees nothing: not linearizable.
    let h = vec![put(0, "k", "a", 1, Some(2)), get(1, "k", None, 3, 4)];
    assert!(check_history(&h).is_err());
}

#[test]
fn reads_going_back_in_time_are_rejected() {
    // Two sequential reads observe b then a, but a was overwritten by b.
    let h = vec![
        put(0, "k", "a", 1, Some(2)),
        put(0, "k", "b", 3, Some(10)),
        get(1, "k", Some("b"), 4, 5),
        get(1, "k", Some("a"), 6, 7),
    ];
    assert!(check_history(&h).is_err());
}

#[test]
fn concurrent_operations_may_take_effect_in_either_order() {
    let h = vec![
        put(0, "k", "a", 1, Some(10)),
        put(1, "k", "b", 2, Some(9)),
        get(2, "k", Some("a"), 3, 8),
        get(2, "k", Some("b"), 11, 12),
    ];
    assert!(check_history(&h).is_ok());
}

#[test]
fn read_of_never_written_value_is_rejected() {
    let h = vec![put(0, "k", "a", 1, Some(2)), get(1, "k", Some("zzz"), 3, 4)];
    assert!(check_history(&h).is_err());
}

#[test]
fn pending_put_may_or_may_not_take_effect() {
    // Unknown-outcome put observed later: fine.
    let h = vec![put(0, "k", "a", 1, None), get(1, "k", Some("a"), 5, 6)];
    assert!(check_history(&h).is_ok());
    // Unknown-outcome put never observed: fine.
    let h = vec![put(0, "k", "a", 1, None), get(1, "k", None, 5, 6)];
    assert!(check_history(&h).is_ok());
    // But it cannot take effect before it was invoked.
    let h = vec![get(1, "k", Some("a"), 1, 2), put(0, "k", "a", 3, None)];
    assert!(check_history(&h).is_err());
}

#[test]
fn keys_are_checked_independently() {
    let h = vec![
        put(0, "x", "1", 1, Some(2)),
        get(1, "y", None, 3, 4),
        get(1, "x", Some("1"), 5, 6),
        put(0, "y", "2", 7, Some(8)),
        get(1, "y", None, 9, 10),
    ];
    let err = check_history(&h).unwrap_err();
    assert!(err.contains("\"y\""), "{err}");
}

#[test]
fn many_concurrent_ops_terminate_quickly() {
    // 40 overlapping puts and gets on one key: memoization keeps this fast.
    let mut h = Vec::new();
    for i in 0..20u64 {
        h.push(put(i as usize, "k", &format!("v{i}"), i, Some(100 + i)));
    }
    for i in 0..20u64 {
        h.push(get(50 + i as usize, "k", Some("v19"), 200 + 2 * i, 201 + 2 * i));
    }
    assert!(check_history(&h).is_ok());
}
