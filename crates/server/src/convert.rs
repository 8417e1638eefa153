//! Between the wire types of the etcd API and the store's own types.

use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;
use synod_kv as kv;
use tonic::Status;

/// Store key-value to wire key-value.
pub fn kv_out(k: kv::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: k.key,
        create_revision: k.create_revision,
        mod_revision: k.mod_revision,
        version: k.version,
        value: k.value,
        lease: k.lease,
    }
}

/// Wire range request to store range request.
pub fn range_in(r: pb::RangeRequest) -> kv::RangeRequest {
    use pb::range_request::{SortOrder as O, SortTarget as T};
    kv::RangeRequest {
        sort_order: match O::try_from(r.sort_order).unwrap_or(O::None) {
            O::None => kv::SortOrder::None,
            O::Ascend => kv::SortOrder::Ascend,
            O::Descend => kv::SortOrder::Descend,
        },
        sort_target: match T::try_from(r.sort_target).unwrap_or(T::Key) {
            T::Key => kv::SortTarget::Key,
            T::Version => kv::SortTarget::Version,
            T::Create => kv::SortTarget::Create,
            T::Mod => kv::SortTarget::Mod,
            T::Value => kv::SortTarget::Value,
        },
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

/// Store range response to wire (header filled by the caller).
pub fn range_out(r: kv::RangeResponse, header: pb::ResponseHeader) -> pb::RangeResponse {
    pb::RangeResponse {
        header: Some(header),
        kvs: r.kvs.into_iter().map(kv_out).collect(),
        more: r.more,
        count: r.count,
    }
}

/// Wire put to store put.
pub fn put_in(p: pb::PutRequest) -> kv::PutRequest {
    kv::PutRequest {
        key: p.key,
        value: p.value.into(),
        lease: p.lease,
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    }
}

/// Wire delete to store delete.
pub fn delete_in(d: pb::DeleteRangeRequest) -> kv::DeleteRangeRequest {
    kv::DeleteRangeRequest {
        key: d.key,
        range_end: d.range_end,
        prev_kv: d.prev_kv,
    }
}

/// Wire transaction to store transaction; refuses malformed compares.
pub fn txn_in(t: pb::TxnRequest) -> Result<kv::TxnRequest, Status> {
    let ops = |v: Vec<pb::RequestOp>| -> Result<Vec<kv::RequestOp>, Status> {
        v.into_iter().map(op_in).collect()
    };
    Ok(kv::TxnRequest {
        compare: t
            .compare
            .into_iter()
            .map(compare_in)
            .collect::<Result<_, _>>()?,
        success: ops(t.success)?,
        failure: ops(t.failure)?,
    })
}

fn op_in(op: pb::RequestOp) -> Result<kv::RequestOp, Status> {
    use pb::request_op::Request as R;
    Ok(match op.request {
        Some(R::RequestRange(r)) => kv::RequestOp::Range(range_in(r)),
        Some(R::RequestPut(p)) => kv::RequestOp::Put(put_in(p)),
        Some(R::RequestDeleteRange(d)) => kv::RequestOp::DeleteRange(delete_in(d)),
        Some(R::RequestTxn(t)) => kv::RequestOp::Txn(txn_in(t)?),
        None => {
            return Err(Status::invalid_argument(
                "etcdserver: empty request op in txn",
            ))
        }
    })
}

fn compare_in(c: pb::Compare) -> Result<kv::Compare, Status> {
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let result = match R::try_from(c.result) {
        Ok(R::Equal) => kv::CompareResult::Equal,
        Ok(R::Greater) => kv::CompareResult::Greater,
        Ok(R::Less) => kv::CompareResult::Less,
        Ok(R::NotEqual) => kv::CompareResult::NotEqual,
        Err(_) => {
            return Err(Status::invalid_argument(
                "etcdserver: unknown compare result",
            ))
        }
    };
    let target = match (T::try_from(c.target), c.target_union) {
        (Ok(T::Version), Some(U::Version(v))) => kv::CompareTarget::Version(v),
        (Ok(T::Version), None) => kv::CompareTarget::Version(0),
        (Ok(T::Create), Some(U::CreateRevision(v))) => kv::CompareTarget::Create(v),
        (Ok(T::Create), None) => kv::CompareTarget::Create(0),
        (Ok(T::Mod), Some(U::ModRevision(v))) => kv::CompareTarget::Mod(v),
        (Ok(T::Mod), None) => kv::CompareTarget::Mod(0),
        (Ok(T::Value), Some(U::Value(v))) => kv::CompareTarget::Value(v),
        (Ok(T::Value), None) => kv::CompareTarget::Value(Vec::new()),
        (Ok(T::Lease), Some(U::Lease(v))) => kv::CompareTarget::Lease(v),
        (Ok(T::Lease), None) => kv::CompareTarget::Lease(0),
        _ => {
            return Err(Status::invalid_argument(
                "etcdserver: compare target and value disagree",
            ))
        }
    };
    Ok(kv::Compare {
        result,
        target,
        key: c.key,
        range_end: c.range_end,
    })
}

/// Store transaction result to wire.
pub fn txn_out(t: kv::TxnResponse, header: pb::ResponseHeader) -> pb::TxnResponse {
    use pb::response_op::Response as R;
    pb::TxnResponse {
        header: Some(header),
        succeeded: t.succeeded,
        responses: t
            .responses
            .into_iter()
            .map(|r| pb::ResponseOp {
                response: Some(match r {
                    kv::ResponseOp::Range(r) => R::ResponseRange(range_out(r, header)),
                    kv::ResponseOp::Put(p) => R::ResponsePut(put_out(p, header)),
                    kv::ResponseOp::DeleteRange(d) => R::ResponseDeleteRange(delete_out(d, header)),
                    kv::ResponseOp::Txn(t) => R::ResponseTxn(txn_out(t, header)),
                }),
            })
            .collect(),
    }
}

/// Store put result to wire.
pub fn put_out(p: kv::PutResponse, header: pb::ResponseHeader) -> pb::PutResponse {
    pb::PutResponse {
        header: Some(header),
        prev_kv: p.prev_kv.map(kv_out),
    }
}

/// Store delete result to wire.
pub fn delete_out(
    d: kv::DeleteRangeResponse,
    header: pb::ResponseHeader,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: Some(header),
        deleted: d.deleted,
        prev_kvs: d.prev_kvs.into_iter().map(kv_out).collect(),
    }
}

/// A store error as the gRPC status etcd returns for it.
pub fn kv_error(e: kv::KvError) -> Status {
    use kv::KvError as E;
    match e {
        E::Compacted | E::FutureRevision => Status::out_of_range(format!("etcdserver: {e}")),
        E::LeaseNotFound => Status::not_found(e.to_string()),
        E::LeaseExists => Status::failed_precondition(e.to_string()),
        E::LeaseTtlTooLarge => Status::out_of_range(e.to_string()),
        E::KeyNotFound
        | E::EmptyKey
        | E::DuplicateKey
        | E::TooManyOps
        | E::UserEmpty
        | E::RoleEmpty
        | E::InvalidAuthMgmt => Status::invalid_argument(e.to_string()),
        E::NoSpace => Status::resource_exhausted(e.to_string()),
        E::PermissionDenied => Status::permission_denied(e.to_string()),
        E::UserAlreadyExist
        | E::UserNotFound
        | E::RoleAlreadyExist
        | E::RoleNotFound
        | E::RoleNotGranted
        | E::PermissionNotGranted
        | E::RootUserNotExist
        | E::RootRoleNotExist => Status::failed_precondition(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value crosses between the wire and the store without a copy: the store keeps the
    /// put's bytes, and an answer hands the encoder the store's.
    #[test]
    fn values_are_moved_not_copied() {
        let wire = pb::PutRequest {
            key: b"k".to_vec(),
            value: vec![7; 256],
            ..Default::default()
        };
        let at = wire.value.as_ptr();
        let put = put_in(wire);
        assert_eq!(put.value.as_ptr(), at);
        let stored = kv::KeyValue {
            key: put.key,
            value: put.value.clone(),
            ..Default::default()
        };
        assert_eq!(kv_out(stored).value.as_ptr(), at);
    }
}
