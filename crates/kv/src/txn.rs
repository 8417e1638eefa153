//! Transaction conditions and the one-write-per-key rule.

use crate::error::KvError;
use crate::range::KeyRange;
use crate::store::Visible;
use crate::types::*;
use std::collections::BTreeSet;

/// True if `c` holds for the keys it selects (`kvs`). For a single key that does not exist,
/// version, create and mod revision and lease read as 0, and a value compare is false; for a
/// range, every existing key must satisfy it.
pub(crate) fn compare_holds<'a>(
    c: &Compare,
    kvs: impl Iterator<Item = Visible<'a>>,
    single: bool,
) -> bool {
    let kvs: Vec<Visible> = kvs.collect();
    if kvs.is_empty() {
        if !single {
            return true;
        }
        return match &c.target {
            CompareTarget::Value(_) => false,
            t => relation(c.result, 0i64.cmp(&number(t))),
        };
    }
    kvs.iter().all(|kv| {
        let ord = match &c.target {
            CompareTarget::Version(v) => kv.value.version.cmp(v),
            CompareTarget::Create(v) => kv.value.create_revision.cmp(v),
            CompareTarget::Mod(v) => kv.main.cmp(v),
            CompareTarget::Lease(v) => kv.value.lease.cmp(v),
            CompareTarget::Value(v) => kv.value.value[..].cmp(v.as_slice()),
        };
        relation(c.result, ord)
    })
}

fn number(t: &CompareTarget) -> i64 {
    match t {
        CompareTarget::Version(v)
        | CompareTarget::Create(v)
        | CompareTarget::Mod(v)
        | CompareTarget::Lease(v) => *v,
        CompareTarget::Value(_) => 0,
    }
}

fn relation(r: CompareResult, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match r {
        CompareResult::Equal => ord == Equal,
        CompareResult::NotEqual => ord != Equal,
        CompareResult::Greater => ord == Greater,
        CompareResult::Less => ord == Less,
    }
}

/// Refuses a branch that writes one key twice (two puts, or a put inside a deleted range),
/// counting nested transactions' branches, as etcd does.
pub fn check_duplicates(ops: &[RequestOp]) -> Result<(), KvError> {
    let mut puts = BTreeSet::new();
    let mut deletes = Vec::new();
    collect(ops, &mut puts, &mut deletes)?;
    for key in &puts {
        if deletes.iter().any(|r: &KeyRange| r.contains(key)) {
            return Err(KvError::DuplicateKey);
        }
    }
    Ok(())
}

fn collect(
    ops: &[RequestOp],
    puts: &mut BTreeSet<Vec<u8>>,
    deletes: &mut Vec<KeyRange>,
) -> Result<(), KvError> {
    for op in ops {
        match op {
            RequestOp::Put(p) => {
                if !puts.insert(p.key.clone()) {
                    return Err(KvError::DuplicateKey);
                }
            }
            RequestOp::DeleteRange(d) => deletes.push(KeyRange::new(&d.key, &d.range_end)),
            RequestOp::Txn(t) => {
                // Only one branch of a nested transaction runs, but each may clash with ours.
                for branch in [&t.success, &t.failure] {
                    let mut p = puts.clone();
                    let mut d = deletes.clone();
                    collect(branch, &mut p, &mut d)?;
                }
            }
            RequestOp::Range(_) => {}
        }
    }
    Ok(())
}
