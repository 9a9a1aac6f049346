//! A Wing–Gong–Lowe style linearizability checker for a key-value store
//! with `put(key, value)` and `get(key) -> Option<value>`.
//!
//! Linearizability is local (compositional), so each key is checked on its
//! own. For one key the search explores linearizations depth first: at each
//! point, any not yet linearized operation invoked before the earliest
//! response among the remaining completed operations may go next, provided
//! the register model agrees with its result. Visited configurations
//! (set of linearized operations, register value) are memoized, as in
//! Lowe's improvement of the Wing–Gong algorithm.
//!
//! Operations without a response (`ret == None`) may or may not have taken
//! effect: a pending put may be linearized at any point after its
//! invocation or not at all; a pending get is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    Put(String),
    /// Result of the get.
    Get(Option<String>),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub client: usize,
    pub key: String,
    pub kind: OpKind,
    /// Invocation time (strictly increasing event clock).
    pub invoke: u64,
    /// Response time, `None` if the outcome is unknown.
    pub ret: Option<u64>,
}

/// Checks a whole history. On failure returns a description of the first
/// key whose sub-history is not linearizable.
pub fn check_history(ops: &[Op]) -> Result<(), String> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for (key, ops) in by_key {
        if !check_key(&ops) {
            let mut s = format!("history for key {key:?} is not linearizable:\n");
            for op in ops {
                s.push_str(&format!("  {op:?}\n"));
            }
            return Err(s);
        }
    }
    Ok(())
}

struct Search<'a> {
    ops: Vec<&'a Op>,
    /// Value id for each put (index into `values`), for compact memo keys.
    put_value: Vec<Option<u32>>,
    get_value: Vec<Option<u32>>,
    memo: HashSet<(Vec<u64>, Option<u32>)>,
}

/// Checks the sub-history of one key.
pub fn check_key(ops: &[&Op]) -> bool {
    // Values read by completed gets; a pending put nobody read can be left out.
    let observed: HashSet<&str> = ops
        .iter()
        .filter(|o| o.ret.is_some())
        .filter_map(|o| match &o.kind {
            OpKind::Get(Some(v)) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    let ops: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|o| match &o.kind {
            OpKind::Get(_) => o.ret.is_some(),
            OpKind::Put(v) => o.ret.is_some() || observed.contains(v.as_str()),
        })
        .collect();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut id_of = |v: &str| -> u32 {
        let n = ids.len() as u32;
        *ids.entry(v.to_string()).or_insert(n)
    };
    let mut put_value = Vec::new();
    let mut get_value = Vec::new();
    for o in &ops {
        match &o.kind {
            OpKind::Put(v) => {
                put_value.push(Some(id_of(v)));
                get_value.push(None);
            }
            OpKind::Get(r) => {
                put_value.push(None);
                // A value no put wrote gets its own id and can never match.
                get_value.push(r.as_deref().map(&mut id_of));
            }
        }
    }
    let completed = ops.iter().filter(|o| o.ret.is_some()).count();
    let words = ops.len().div_ceil(64).max(1);
    let mut s = Search { ops, put_value, get_value, memo: HashSet::new() };
    let mut done = vec![0u64; words];
    s.dfs(&mut done, None, completed)
}

impl Search<'_> {
    fn dfs(&mut self, done: &mut Vec<u64>, value: Option<u32>, remaining: usize) -> bool {
        if remaining == 0 {
            return true;
        }
        if !self.memo.insert((done.clone(), value)) {
            return false;
        }
        let is_done = |done: &[u64], i: usize| done[i / 64] & (1 << (i % 64)) != 0;
        let min_ret = (0..self.ops.len())
            .filter(|&i| !is_done(done, i))
            .filter_map(|i| self.ops[i].ret)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..self.ops.len() {
            if is_done(done, i) || self.ops[i].invoke > min_ret {
                continue;
            }
            let completed = usize::from(self.ops[i].ret.is_some());
            let next_value = match &self.ops[i].kind {
                OpKind::Put(_) => self.put_value[i],
                OpKind::Get(_) => {
                    if self.get_value[i] != value {
                        continue;
                    }
                    value
                }
            };
            done[i / 64] |= 1 << (i % 64);
            let ok = self.dfs(done, next_value, remaining - completed);
            done[i / 64] &= !(1 << (i % 64));
            if ok {
                return true;
            }
        }
        false
    }
}
