//! Errors, worded as etcd words them so clients that match on messages keep working.

use thiserror::Error;

/// Why a key-value request failed. The message texts are etcd's.
#[derive(Clone, Debug, Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KvError {
    /// A read or compaction below the compacted revision.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// A read or compaction above the current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// `ignore_value` or `ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// An empty key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// Two writes to one key in one transaction branch.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A lease that does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A lease id that is already granted.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A TTL above the limit.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// More operations in a transaction than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A request without a user while auth is on.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// The user may not do this.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// Adding a user that exists.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// No such user.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// Adding a role that exists.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// No such role.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// An empty role name.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// Revoking a role the user does not have.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// Revoking a permission the role does not have.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// Enabling auth without a root user.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// Enabling auth while root lacks the root role.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// A change that would lock everyone out (deleting root while auth is on, and the like).
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// A write while a NOSPACE alarm is raised.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
}
