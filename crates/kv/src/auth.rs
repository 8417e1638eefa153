//! etcd's authentication state as replicated state: users, roles, key-range permissions and
//! whether auth is on. Every change is a command in the log, so every replica checks a request
//! against the same state at the same point in the log. Passwords arrive here already hashed:
//! hashing is slow and salted (random), so the server does it before proposing.

use crate::error::KvError;
use crate::machine::KvCommand;
use crate::maintenance::AlarmCommand;
use crate::range::KeyRange;
use crate::store::Store;
use crate::types::{RequestOp, TxnRequest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The role that may do everything, as in etcd.
pub const ROOT_ROLE: &str = "root";
/// The user that must exist, with the root role, before auth can be enabled.
pub const ROOT_USER: &str = "root";

/// What a permission allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PermKind {
    /// Reads (range, watch, txn compares).
    Read,
    /// Writes (put, delete).
    Write,
    /// Both.
    ReadWrite,
}

impl PermKind {
    fn allows_read(self) -> bool {
        matches!(self, PermKind::Read | PermKind::ReadWrite)
    }

    fn allows_write(self) -> bool {
        matches!(self, PermKind::Write | PermKind::ReadWrite)
    }
}

/// A permission on a key or key range (`range_end` with etcd's conventions, see
/// [`KeyRange::new`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// What it allows.
    pub kind: PermKind,
    /// The key or the range's start.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Empty for one key.
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The password's hash in PHC string form; `None` for a user that may not log in with a
    /// password (etcd's `--no-password`).
    pub password_hash: Option<String>,
    /// Roles granted.
    pub roles: BTreeSet<String>,
    /// The auth revision at which the user was added or its password last set. Tokens carry
    /// it, so a password change (or deleting and re-adding the user) voids every token issued
    /// before.
    pub epoch: u64,
}

/// A change to the auth state, ordered through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthCommand {
    /// Turn auth on. `secret` signs this cluster's simple tokens from now on (the proposer
    /// draws it at random, so enabling again invalidates every earlier token).
    Enable {
        /// Key for the tokens' MAC.
        #[serde(with = "serde_bytes")]
        secret: Vec<u8>,
    },
    /// Turn auth off.
    Disable,
    /// Add a user.
    UserAdd {
        /// Its name.
        name: String,
        /// Its password's hash, or `None` for no password.
        password_hash: Option<String>,
    },
    /// Delete a user.
    UserDelete {
        /// Its name.
        name: String,
    },
    /// Set a user's password.
    UserChangePassword {
        /// Its name.
        name: String,
        /// The new hash, or `None` for no password.
        password_hash: Option<String>,
    },
    /// Grant a role to a user.
    UserGrantRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// Revoke a role from a user.
    UserRevokeRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// Add a role.
    RoleAdd {
        /// Its name.
        name: String,
    },
    /// Delete a role (and revoke it from every user).
    RoleDelete {
        /// Its name.
        name: String,
    },
    /// Grant a permission to a role; a permission on the same key and range end is replaced.
    RoleGrantPermission {
        /// The role.
        role: String,
        /// The permission.
        perm: Permission,
    },
    /// Revoke the permission on exactly this key and range end.
    RoleRevokePermission {
        /// The role.
        role: String,
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The range end.
        #[serde(with = "serde_bytes")]
        range_end: Vec<u8>,
    },
}

/// Users, roles and the auth switch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    enabled: bool,
    /// Counts changes, as etcd's auth revision does.
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Vec<Permission>>,
    #[serde(with = "serde_bytes")]
    secret: Vec<u8>,
}

/// `[start, end)`, with `None` for no end.
type Interval = (Vec<u8>, Option<Vec<u8>>);

fn interval(key: &[u8], range_end: &[u8]) -> Interval {
    match KeyRange::new(key, range_end) {
        KeyRange::One(k) => {
            let mut end = k.clone();
            end.push(0);
            (k, Some(end))
        }
        KeyRange::Span(s, e) => (s, Some(e)),
        KeyRange::From(s) => (s, None),
    }
}

impl AuthState {
    /// True when requests are checked.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The number of changes made so far.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The key simple tokens are signed with (empty until auth was first enabled).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// A user by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Every user's name, sorted.
    pub fn user_names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// A role's permissions (`None`: no such role). The root role exists implicitly.
    pub fn role(&self, name: &str) -> Option<&[Permission]> {
        match self.roles.get(name) {
            Some(p) => Some(p),
            None if name == ROOT_ROLE => Some(&[]),
            None => None,
        }
    }

    /// Every role's name, sorted.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// True if `user` exists and holds the root role.
    pub fn is_root(&self, user: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.contains(ROOT_ROLE))
    }

    /// May `user` run admin requests (auth changes)? Always, while auth is off.
    pub fn check_admin(&self, user: Option<&str>) -> Result<(), KvError> {
        if !self.enabled {
            return Ok(());
        }
        if self.known(user)?.roles.contains(ROOT_ROLE) {
            Ok(())
        } else {
            Err(KvError::PermissionDenied)
        }
    }

    /// The user a request names, if this store knows it: no name is `UserEmpty`, a name alone
    /// (say a certificate's) that no user has is `PermissionDenied`.
    fn known(&self, user: Option<&str>) -> Result<&User, KvError> {
        let user = user.ok_or(KvError::UserEmpty)?;
        self.users.get(user).ok_or(KvError::PermissionDenied)
    }

    /// Is `user` one this store knows?
    fn check_known(&self, user: Option<&str>) -> Result<(), KvError> {
        self.known(user).map(|_| ())
    }

    /// May `user` read (or, with `write`, write) every key of `key..range_end`? Always, while
    /// auth is off. A range is allowed only if the user's permissions together cover all of
    /// it, so no key a range could return is unchecked.
    pub fn check(
        &self,
        user: Option<&str>,
        key: &[u8],
        range_end: &[u8],
        write: bool,
    ) -> Result<(), KvError> {
        if !self.enabled {
            return Ok(());
        }
        let u = self.known(user)?;
        if u.roles.contains(ROOT_ROLE) {
            return Ok(());
        }
        let mut granted: Vec<Interval> = u
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flatten()
            .filter(|p| {
                if write {
                    p.kind.allows_write()
                } else {
                    p.kind.allows_read()
                }
            })
            .map(|p| interval(&p.key, &p.range_end))
            .collect();
        granted.sort();
        let (start, end) = interval(key, range_end);
        if covered(&granted, start, end.as_deref()) {
            Ok(())
        } else {
            Err(KvError::PermissionDenied)
        }
    }

    /// Checks every key a request touches: reads for ranges and compares (and for the
    /// previous values a put or delete returns), writes for puts and deletes.
    pub fn check_command(
        &self,
        user: Option<&str>,
        cmd: &KvCommand,
        store: &Store,
    ) -> Result<(), KvError> {
        if !self.enabled {
            return Ok(());
        }
        match cmd {
            KvCommand::Range(r) => self.check(user, &r.key, &r.range_end, false),
            KvCommand::Put(p) => self.check_write(user, &p.key, &[], p.prev_kv),
            KvCommand::DeleteRange(d) => self.check_write(user, &d.key, &d.range_end, d.prev_kv),
            KvCommand::Txn(t) => self.check_txn(user, t),
            KvCommand::LeaseRevoke { id } | KvCommand::LeaseQuery { id } => {
                // A known user first: a lease with no keys yet must not be anyone's to revoke.
                self.check_known(user)?;
                let write = matches!(cmd, KvCommand::LeaseRevoke { .. });
                match store.lease(*id) {
                    Some(l) => l
                        .keys
                        .iter()
                        .try_for_each(|k| self.check(user, k, &[], write)),
                    None => Ok(()),
                }
            }
            // A user may change its own password; every other change is root's.
            KvCommand::Auth(AuthCommand::UserChangePassword { name, .. })
                if user == Some(name.as_str()) =>
            {
                self.check_known(user)
            }
            KvCommand::Auth(_) => self.check_admin(user),
            KvCommand::Compact(_) | KvCommand::LeaseGrant { .. } | KvCommand::LeaseList => {
                self.check_known(user)
            }
            KvCommand::As { .. } => Err(KvError::InvalidAuthMgmt),
            // Issued by the servers themselves, on behalf of leases already granted.
            KvCommand::LeaseKeepAlive { .. }
            | KvCommand::LeaseExpire { .. }
            | KvCommand::Alarm(AlarmCommand::Raise(_)) => Ok(()),
            KvCommand::Alarm(_) => self.check_admin(user),
        }
    }

    /// A put or delete: a write, and a read too when it returns the previous values.
    fn check_write(
        &self,
        user: Option<&str>,
        key: &[u8],
        range_end: &[u8],
        prev_kv: bool,
    ) -> Result<(), KvError> {
        self.check(user, key, range_end, true)?;
        if prev_kv {
            self.check(user, key, range_end, false)?;
        }
        Ok(())
    }

    fn check_txn(&self, user: Option<&str>, t: &TxnRequest) -> Result<(), KvError> {
        for c in &t.compare {
            self.check(user, &c.key, &c.range_end, false)?;
        }
        for op in t.success.iter().chain(&t.failure) {
            match op {
                RequestOp::Range(r) => self.check(user, &r.key, &r.range_end, false)?,
                RequestOp::Put(p) => self.check_write(user, &p.key, &[], p.prev_kv)?,
                RequestOp::DeleteRange(d) => {
                    self.check_write(user, &d.key, &d.range_end, d.prev_kv)?
                }
                RequestOp::Txn(inner) => self.check_txn(user, inner)?,
            }
        }
        Ok(())
    }

    /// Applies a change. Checked here, deterministically, so every replica agrees on which
    /// changes failed.
    pub fn apply(&mut self, cmd: &AuthCommand) -> Result<(), KvError> {
        match cmd {
            AuthCommand::Enable { secret } => {
                if self.enabled {
                    return Ok(());
                }
                if !self.users.contains_key(ROOT_USER) {
                    return Err(KvError::RootUserNotExist);
                }
                if !self.is_root(ROOT_USER) {
                    return Err(KvError::RootRoleNotExist);
                }
                self.enabled = true;
                self.secret = secret.clone();
            }
            AuthCommand::Disable => self.enabled = false,
            AuthCommand::UserAdd {
                name,
                password_hash,
            } => {
                if name.is_empty() {
                    return Err(KvError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(KvError::UserAlreadyExist);
                }
                self.users.insert(
                    name.clone(),
                    User {
                        password_hash: password_hash.clone(),
                        roles: BTreeSet::new(),
                        epoch: self.revision + 1,
                    },
                );
            }
            AuthCommand::UserDelete { name } => {
                if self.enabled && name == ROOT_USER {
                    return Err(KvError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(KvError::UserNotFound)?;
            }
            AuthCommand::UserChangePassword {
                name,
                password_hash,
            } => {
                let u = self.users.get_mut(name).ok_or(KvError::UserNotFound)?;
                u.password_hash = password_hash.clone();
                u.epoch = self.revision + 1;
            }
            AuthCommand::UserGrantRole { user, role } => {
                if role != ROOT_ROLE && !self.roles.contains_key(role) {
                    return Err(KvError::RoleNotFound);
                }
                let u = self.users.get_mut(user).ok_or(KvError::UserNotFound)?;
                u.roles.insert(role.clone());
            }
            AuthCommand::UserRevokeRole { user, role } => {
                if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
                    return Err(KvError::InvalidAuthMgmt);
                }
                let u = self.users.get_mut(user).ok_or(KvError::UserNotFound)?;
                if !u.roles.remove(role) {
                    return Err(KvError::RoleNotGranted);
                }
            }
            AuthCommand::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(KvError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(KvError::RoleAlreadyExist);
                }
                self.roles.insert(name.clone(), Vec::new());
            }
            AuthCommand::RoleDelete { name } => {
                if self.enabled && name == ROOT_ROLE {
                    return Err(KvError::InvalidAuthMgmt);
                }
                self.roles.remove(name).ok_or(KvError::RoleNotFound)?;
                for u in self.users.values_mut() {
                    u.roles.remove(name);
                }
            }
            AuthCommand::RoleGrantPermission { role, perm } => {
                let perms = self.roles.get_mut(role).ok_or(KvError::RoleNotFound)?;
                match perms
                    .iter_mut()
                    .find(|p| p.key == perm.key && p.range_end == perm.range_end)
                {
                    Some(p) => p.kind = perm.kind,
                    None => perms.push(perm.clone()),
                }
                perms.sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
            }
            AuthCommand::RoleRevokePermission {
                role,
                key,
                range_end,
            } => {
                let perms = self.roles.get_mut(role).ok_or(KvError::RoleNotFound)?;
                let before = perms.len();
                perms.retain(|p| !(&p.key == key && &p.range_end == range_end));
                if perms.len() == before {
                    return Err(KvError::PermissionNotGranted);
                }
            }
        }
        self.revision += 1;
        Ok(())
    }
}

/// True if the sorted intervals `granted` together cover `[start, end)`.
fn covered(granted: &[Interval], start: Vec<u8>, end: Option<&[u8]>) -> bool {
    if end.is_some_and(|e| e <= start.as_slice()) {
        return true; // selects no key
    }
    let mut reached = start;
    for (s, e) in granted {
        if s.as_slice() > reached.as_slice() {
            return false; // a gap no later interval (they start later still) can fill
        }
        match e {
            None => return true,
            Some(e) if e.as_slice() > reached.as_slice() => {
                reached = e.clone();
                if end.is_some_and(|end| end <= reached.as_slice()) {
                    return true;
                }
            }
            Some(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(kind: PermKind, key: &str, end: &str) -> Permission {
        Permission {
            kind,
            key: key.into(),
            range_end: end.into(),
        }
    }

    /// The changes that make `root` a root user and add user `u`, without a password.
    pub(super) fn root_and_u() -> Vec<AuthCommand> {
        let user = |name: &str| AuthCommand::UserAdd {
            name: name.into(),
            password_hash: None,
        };
        vec![
            user("root"),
            AuthCommand::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
            user("u"),
        ]
    }

    /// Auth on, root, and user `u` with role `r` holding `perms`.
    fn state(perms: Vec<Permission>) -> AuthState {
        let mut a = AuthState::default();
        let role = [
            AuthCommand::RoleAdd { name: "r".into() },
            AuthCommand::UserGrantRole {
                user: "u".into(),
                role: "r".into(),
            },
        ];
        for c in root_and_u().into_iter().chain(role) {
            a.apply(&c).unwrap();
        }
        for p in perms {
            a.apply(&AuthCommand::RoleGrantPermission {
                role: "r".into(),
                perm: p,
            })
            .unwrap();
        }
        a.apply(&AuthCommand::Enable { secret: vec![7] }).unwrap();
        a
    }

    fn add(a: &mut AuthState, c: AuthCommand) {
        a.apply(&c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    }

    #[test]
    fn what_the_state_tells_the_server() {
        let mut a = AuthState::default();
        assert!(!a.enabled());
        assert!(a.secret().is_empty());
        add(
            &mut a,
            AuthCommand::UserAdd {
                name: "root".into(),
                password_hash: Some("h".into()),
            },
        );
        // A user's epoch is the auth revision its password was set at.
        assert_eq!(a.user("root").unwrap().epoch, a.revision());
        add(&mut a, AuthCommand::RoleAdd { name: "r".into() });
        add(
            &mut a,
            AuthCommand::UserChangePassword {
                name: "root".into(),
                password_hash: None,
            },
        );
        assert_eq!(a.user("root").unwrap().epoch, a.revision());
        assert_eq!(a.user("root").unwrap().password_hash, None);
        add(
            &mut a,
            AuthCommand::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
        );
        add(&mut a, AuthCommand::Enable { secret: vec![4, 2] });
        assert!(a.enabled());
        assert_eq!(a.secret(), [4, 2]);
        assert_eq!(a.user_names().collect::<Vec<_>>(), ["root"]);
        assert_eq!(a.role_names().collect::<Vec<_>>(), ["r"]);
        assert_eq!(a.role("r"), Some(&[][..]));
        // The root role exists without being added; no other does.
        assert_eq!(a.role("root"), Some(&[][..]));
        assert_eq!(a.role("nope"), None);
    }

    #[test]
    fn the_lockout_rules_hold_only_for_root_and_only_while_auth_is_on() {
        let mut a = state(vec![perm(PermKind::Read, "a", "")]);
        let mut off = a.clone();
        off.apply(&AuthCommand::Disable).unwrap();
        // On: root, its role and the root role stay.
        let root_role = AuthCommand::UserRevokeRole {
            user: "root".into(),
            role: "root".into(),
        };
        assert_eq!(a.apply(&root_role), Err(KvError::InvalidAuthMgmt));
        let del_root_role = AuthCommand::RoleDelete {
            name: "root".into(),
        };
        assert_eq!(a.apply(&del_root_role), Err(KvError::InvalidAuthMgmt));
        // ... but other users, roles and grants go as usual.
        add(
            &mut a,
            AuthCommand::UserRevokeRole {
                user: "u".into(),
                role: "r".into(),
            },
        );
        add(
            &mut a,
            AuthCommand::UserGrantRole {
                user: "u".into(),
                role: "root".into(),
            },
        );
        add(
            &mut a,
            AuthCommand::UserRevokeRole {
                user: "u".into(),
                role: "root".into(),
            },
        );
        add(&mut a, AuthCommand::RoleDelete { name: "r".into() });
        add(&mut a, AuthCommand::UserDelete { name: "u".into() });
        // Off: root may go too.
        add(&mut off, root_role);
        add(
            &mut off,
            AuthCommand::RoleAdd {
                name: "root".into(),
            },
        );
        add(&mut off, del_root_role);
        add(
            &mut off,
            AuthCommand::UserDelete {
                name: "root".into(),
            },
        );
    }

    #[test]
    fn a_grant_on_the_same_range_replaces_the_kind_and_other_ranges_add_up() {
        let mut a = state(vec![perm(PermKind::Read, "a", "c")]);
        let grant = |a: &mut AuthState, p: Permission| {
            add(
                a,
                AuthCommand::RoleGrantPermission {
                    role: "r".into(),
                    perm: p,
                },
            )
        };
        grant(&mut a, perm(PermKind::Write, "a", "c"));
        assert_eq!(a.role("r").unwrap(), [perm(PermKind::Write, "a", "c")]);
        grant(&mut a, perm(PermKind::Read, "a", "b"));
        grant(&mut a, perm(PermKind::Read, "b", "c"));
        assert_eq!(a.role("r").unwrap().len(), 3);
        assert_eq!(a.check(Some("u"), b"a", b"c", false), Ok(()));
        assert_eq!(a.check(Some("u"), b"a", b"c", true), Ok(()));
    }

    #[test]
    fn enabling_needs_a_root_user_with_the_root_role() {
        let mut a = AuthState::default();
        let on = AuthCommand::Enable { secret: vec![1] };
        assert_eq!(a.apply(&on), Err(KvError::RootUserNotExist));
        a.apply(&AuthCommand::UserAdd {
            name: "root".into(),
            password_hash: None,
        })
        .unwrap();
        assert_eq!(a.apply(&on), Err(KvError::RootRoleNotExist));
        a.apply(&AuthCommand::UserGrantRole {
            user: "root".into(),
            role: "root".into(),
        })
        .unwrap();
        a.apply(&on).unwrap();
        assert!(a.enabled());
        assert_eq!(
            a.apply(&AuthCommand::UserDelete {
                name: "root".into()
            }),
            Err(KvError::InvalidAuthMgmt)
        );
    }

    #[test]
    fn a_range_is_allowed_only_where_permissions_cover_all_of_it() {
        let a = state(vec![
            perm(PermKind::Read, "a", "c"),
            perm(PermKind::ReadWrite, "c", "e"),
            perm(PermKind::Write, "x", ""),
        ]);
        let u = Some("u");
        assert_eq!(a.check(u, b"a", b"e", false), Ok(()));
        assert_eq!(a.check(u, b"b", b"", false), Ok(()));
        assert_eq!(
            a.check(u, b"a", b"f", false),
            Err(KvError::PermissionDenied)
        );
        assert_eq!(
            a.check(u, b"a", b"\0", false),
            Err(KvError::PermissionDenied)
        );
        assert_eq!(a.check(u, b"b", b"", true), Err(KvError::PermissionDenied));
        assert_eq!(a.check(u, b"d", b"", true), Ok(()));
        assert_eq!(a.check(u, b"x", b"", true), Ok(()));
        assert_eq!(a.check(u, b"x", b"", false), Err(KvError::PermissionDenied));
        // One key's permission does not cover the keys it prefixes.
        assert_eq!(a.check(u, b"x", b"y", true), Err(KvError::PermissionDenied));
        assert_eq!(a.check(None, b"b", b"", false), Err(KvError::UserEmpty));
        assert_eq!(
            a.check(Some("nobody"), b"b", b"", false),
            Err(KvError::PermissionDenied)
        );
        assert_eq!(a.check(Some("root"), b"\0", b"\0", true), Ok(()));
    }

    #[test]
    fn a_gap_between_permissions_is_not_covered() {
        let a = state(vec![
            perm(PermKind::Read, "a", "b"),
            perm(PermKind::Read, "c", "\0"),
        ]);
        assert_eq!(
            a.check(Some("u"), b"a", b"d", false),
            Err(KvError::PermissionDenied)
        );
        assert_eq!(a.check(Some("u"), b"c", b"\0", false), Ok(()));
        assert_eq!(a.check(Some("u"), b"zzz", b"", false), Ok(()));
    }

    #[test]
    fn every_key_of_a_txn_is_checked() {
        use crate::types::{Compare, CompareResult, CompareTarget, PutRequest};
        let a = state(vec![perm(PermKind::ReadWrite, "a", "b")]);
        let put = |k: &str| {
            RequestOp::Put(PutRequest {
                key: k.into(),
                ..Default::default()
            })
        };
        let mut t = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal,
                target: CompareTarget::Version(0),
                key: b"a1".to_vec(),
                range_end: Vec::new(),
            }],
            success: vec![put("a2")],
            failure: vec![put("a3")],
        };
        assert_eq!(a.check_txn(Some("u"), &t), Ok(()));
        t.failure.push(RequestOp::Txn(TxnRequest {
            compare: vec![],
            success: vec![put("z")],
            failure: vec![],
        }));
        assert_eq!(a.check_txn(Some("u"), &t), Err(KvError::PermissionDenied));
        t.failure.pop();
        t.compare[0].key = b"q".to_vec();
        assert_eq!(a.check_txn(Some("u"), &t), Err(KvError::PermissionDenied));
    }

    #[test]
    fn deleting_a_role_revokes_it_and_a_revoke_must_match_exactly() {
        let mut a = state(vec![perm(PermKind::Read, "a", "b")]);
        assert_eq!(
            a.apply(&AuthCommand::RoleRevokePermission {
                role: "r".into(),
                key: b"a".to_vec(),
                range_end: Vec::new(),
            }),
            Err(KvError::PermissionNotGranted)
        );
        // An exact match goes, and only it.
        a.apply(&AuthCommand::RoleGrantPermission {
            role: "r".into(),
            perm: perm(PermKind::Write, "c", "d"),
        })
        .unwrap();
        a.apply(&AuthCommand::RoleRevokePermission {
            role: "r".into(),
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        })
        .unwrap();
        assert_eq!(a.role("r").unwrap(), [perm(PermKind::Write, "c", "d")]);
        a.apply(&AuthCommand::RoleDelete { name: "r".into() })
            .unwrap();
        assert!(a.user("u").unwrap().roles.is_empty());
        assert_eq!(
            a.check(Some("u"), b"a", b"", false),
            Err(KvError::PermissionDenied)
        );
    }

    #[test]
    fn coverage_matches_a_brute_force_check_on_small_alphabets() {
        // Keys over {a,b,c} up to length 2: a range is covered iff every such key in it is in
        // some granted interval, for intervals whose ends are such keys too.
        let keys: Vec<Vec<u8>> = {
            let mut v = vec![Vec::new()];
            for c1 in b"abc" {
                v.push(vec![*c1]);
                for c2 in b"abc" {
                    v.push(vec![*c1, *c2]);
                }
            }
            v
        };
        let inside = |k: &[u8], (s, e): &Interval| {
            s.as_slice() <= k && e.as_ref().is_none_or(|e| k < e.as_slice())
        };
        let mut seed = 12345u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for round in 0..2000 {
            let mut granted: Vec<Interval> = (0..next(4))
                .map(|_| {
                    let s = keys[next(keys.len())].clone();
                    let e = if next(5) == 0 {
                        None
                    } else {
                        Some(keys[next(keys.len())].clone())
                    };
                    (s, e)
                })
                .collect();
            granted.sort();
            let s = keys[next(keys.len())].clone();
            let e = if next(5) == 0 {
                None
            } else {
                Some(keys[next(keys.len())].clone())
            };
            let want = keys
                .iter()
                .filter(|k| inside(k, &(s.clone(), e.clone())))
                .all(|k| granted.iter().any(|g| inside(k, g)));
            let got = covered(&granted, s.clone(), e.as_deref());
            // Exact, not just one-sided: every endpoint is one of `keys`, so any gap starts
            // at one of them, which the brute force sees.
            assert_eq!(got, want, "round {round}: {granted:?} vs [{s:?}, {e:?})");
        }
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::machine::{KvOutput, KvResult};
    use crate::types::PutRequest;
    use std::sync::Arc;
    use synod_core::multi::StateMachine;

    fn put(key: &str) -> KvCommand {
        KvCommand::Put(PutRequest {
            key: key.into(),
            value: b"v".to_vec().into(),
            ..Default::default()
        })
    }

    fn auth(cmd: AuthCommand) -> KvCommand {
        KvCommand::Auth(cmd)
    }

    fn ok(out: KvOutput) {
        assert!(out.result.is_ok(), "{out:?}");
    }

    #[test]
    fn writes_are_checked_when_applied_and_auth_survives_a_snapshot() {
        let mut s = Store::new();
        for c in super::tests::root_and_u().into_iter().chain([
            AuthCommand::RoleAdd { name: "r".into() },
            AuthCommand::RoleGrantPermission {
                role: "r".into(),
                perm: Permission {
                    kind: PermKind::Write,
                    key: b"a".to_vec(),
                    range_end: b"b".to_vec(),
                },
            },
            AuthCommand::UserGrantRole {
                user: "u".into(),
                role: "r".into(),
            },
        ]) {
            ok(s.apply(&auth(c)));
        }
        // Before auth is on, anyone may do anything.
        ok(s.apply(&put("z")));
        ok(s.apply(&auth(AuthCommand::Enable { secret: vec![9] })));
        let as_u = |c: KvCommand| c.run_as(Some("u".into()));
        assert_eq!(s.apply(&put("a1")).result, Err(KvError::UserEmpty));
        ok(s.apply(&as_u(put("a1"))));
        assert_eq!(
            s.apply(&as_u(put("z"))).result,
            Err(KvError::PermissionDenied)
        );
        // Only root changes auth once it is on; a failed change leaves it as it was.
        let before = s.auth().clone();
        assert_eq!(
            s.apply(&as_u(auth(AuthCommand::Disable))).result,
            Err(KvError::PermissionDenied)
        );
        assert!(Arc::ptr_eq(&before, s.auth()));
        // A user may not be smuggled in twice.
        let nested = as_u(put("a2")).run_as(Some("root".into()));
        assert_eq!(s.apply(&nested).result, Err(KvError::InvalidAuthMgmt));

        let restored = Store::restore(&s.snapshot()).unwrap();
        assert_eq!(restored.auth(), s.auth());
        assert!(restored.auth().enabled());
        let mut restored = restored;
        assert_eq!(
            restored.apply(&as_u(put("z"))).result,
            Err(KvError::PermissionDenied)
        );
        // A user changes its own password, and no one else's.
        let own = |name: &str| {
            auth(AuthCommand::UserChangePassword {
                name: name.into(),
                password_hash: None,
            })
        };
        ok(restored.apply(&as_u(own("u"))));
        assert_eq!(
            restored.apply(&as_u(own("root"))).result,
            Err(KvError::PermissionDenied)
        );
        // Revoking the role stops the user's next write.
        let out = restored.apply(
            &auth(AuthCommand::UserRevokeRole {
                user: "u".into(),
                role: "r".into(),
            })
            .run_as(Some("root".into())),
        );
        assert_eq!(out.result, Ok(KvResult::AuthChanged));
        assert_eq!(
            restored.apply(&as_u(put("a1"))).result,
            Err(KvError::PermissionDenied)
        );
    }

    #[test]
    fn a_snapshot_without_auth_is_the_store_alone() {
        let mut s = Store::new();
        ok(s.apply(&put("k")));
        let bytes = s.snapshot();
        assert_eq!(bytes, synod_core::encode::to_vec_exact(&s).unwrap());
        let mut bad = bytes.clone();
        bad.push(1);
        assert!(Store::restore(&bad).is_err());
    }

    #[test]
    fn lease_and_compaction_requests_need_a_known_user() {
        let mut s = Store::new();
        for c in super::tests::root_and_u() {
            ok(s.apply(&auth(c)));
        }
        ok(s.apply(&KvCommand::LeaseGrant { id: 7, ttl: 60 }));
        ok(s.apply(&auth(AuthCommand::Enable { secret: vec![1] })));
        let revoke = KvCommand::LeaseRevoke { id: 7 };
        assert_eq!(s.apply(&revoke).result, Err(KvError::UserEmpty));
        let stranger = revoke.clone().run_as(Some("stranger".into()));
        assert_eq!(s.apply(&stranger).result, Err(KvError::PermissionDenied));
        let compact = KvCommand::Compact(crate::types::CompactionRequest { revision: 1 });
        let by_stranger = compact.clone().run_as(Some("stranger".into()));
        assert_eq!(s.apply(&by_stranger).result, Err(KvError::PermissionDenied));
        ok(s.apply(&compact.run_as(Some("u".into()))));
        ok(s.apply(&revoke.run_as(Some("u".into()))));
    }
}
