//! The Auth service: users, roles and permissions, changed through the log. Reads of the auth
//! state (get, list, status) answer from this node's last applied state.

use crate::auth::{hash_password, hashing, is_usable_hash, verify_login};
use crate::convert::kv_error;
use crate::grpc::{unexpected, Api};
use crate::proto::{authpb, etcdserverpb as pb};
use synod_kv::{AuthCommand, KvCommand, KvError, KvResult, PermKind, Permission};
use tonic::{Request, Response, Status};

fn perm_in(p: authpb::Permission) -> Permission {
    use authpb::permission::Type;
    Permission {
        kind: match Type::try_from(p.perm_type).unwrap_or(Type::Read) {
            Type::Read => PermKind::Read,
            Type::Write => PermKind::Write,
            Type::Readwrite => PermKind::ReadWrite,
        },
        key: p.key,
        range_end: p.range_end,
    }
}

fn perm_out(p: &Permission) -> authpb::Permission {
    use authpb::permission::Type;
    authpb::Permission {
        perm_type: match p.kind {
            PermKind::Read => Type::Read,
            PermKind::Write => Type::Write,
            PermKind::ReadWrite => Type::Readwrite,
        } as i32,
        key: p.key.clone(),
        range_end: p.range_end.clone(),
    }
}

/// The stored form of a new password: a hash made here (slowly, off the async workers), a hash
/// the client made (which must be one Synod can check), or none for a user without one.
async fn password_hash(
    password: String,
    hashed: String,
    no_password: bool,
) -> Result<Option<String>, Status> {
    if no_password {
        return Ok(None);
    }
    if !hashed.is_empty() {
        if !is_usable_hash(&hashed) {
            return Err(Status::invalid_argument(
                "hashedPassword must be an Argon2id PHC string; send the password instead",
            ));
        }
        return Ok(Some(hashed));
    }
    if password.is_empty() {
        return Err(Status::invalid_argument(
            "password is empty; give one, or add the user with --no-password",
        ));
    }
    hashing(move || hash_password(&password))
        .await
        .map(Some)
        .ok_or_else(|| Status::internal("hashing the password failed"))
}

impl Api {
    /// Runs an auth change as the request's user; only root may once auth is on.
    async fn auth_change<T>(
        &self,
        req: &Request<T>,
        cmd: AuthCommand,
    ) -> Result<pb::ResponseHeader, Status> {
        let user = self.user_of(req)?;
        match self.order(user, KvCommand::Auth(cmd)).await? {
            (KvResult::AuthChanged, h) => Ok(h),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Reads of the auth state: root, or (with `own`) the user asking about itself.
    fn auth_read<T>(&self, req: &Request<T>, own: impl Fn(&str) -> bool) -> Result<(), Status> {
        let user = self.user_of(req)?;
        let state = self.auth.state();
        match state.check_admin(user.as_deref()) {
            Ok(()) => Ok(()),
            Err(_) if user.as_deref().is_some_and(own) => Ok(()),
            Err(e) => Err(kv_error(e)),
        }
    }
}

#[tonic::async_trait]
impl pb::auth_server::Auth for Api {
    async fn auth_enable(
        &self,
        req: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let secret: [u8; 32] = rand::random();
        let cmd = AuthCommand::Enable {
            secret: secret.to_vec(),
        };
        let header = Some(self.auth_change(&req, cmd).await?);
        Ok(Response::new(pb::AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        req: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let header = Some(self.auth_change(&req, AuthCommand::Disable).await?);
        Ok(Response::new(pb::AuthDisableResponse { header }))
    }

    async fn auth_status(
        &self,
        _req: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let s = self.auth.state();
        Ok(Response::new(pb::AuthStatusResponse {
            header: Some(self.header(0)),
            enabled: s.enabled(),
            auth_revision: s.revision(),
        }))
    }

    async fn authenticate(
        &self,
        req: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let _t = self.timer("authenticate");
        let req = req.into_inner();
        let state = self.auth.state();
        if !state.enabled() {
            return Err(Status::failed_precondition(
                "etcdserver: authentication is not enabled",
            ));
        }
        let hash = state.user(&req.name).and_then(|u| u.password_hash.clone());
        let password = req.password;
        let ok = hashing(move || verify_login(&password, hash.as_deref()))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(Status::invalid_argument(
                "etcdserver: authentication failed, invalid user ID or password",
            ));
        }
        Ok(Response::new(pb::AuthenticateResponse {
            header: Some(self.header(0)),
            token: self.auth.issue_at(&state, &req.name)?,
        }))
    }

    async fn user_add(
        &self,
        req: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        // Refuse early, before the slow hash, what the log would refuse anyway.
        self.auth_read(&req, |_| false)?;
        let r = req.get_ref().clone();
        if r.name.is_empty() {
            return Err(kv_error(KvError::UserEmpty));
        }
        let no_password = r.options.is_some_and(|o| o.no_password);
        let hash = password_hash(r.password, r.hashed_password, no_password).await?;
        let cmd = AuthCommand::UserAdd {
            name: r.name,
            password_hash: hash,
        };
        let header = Some(self.auth_change(&req, cmd).await?);
        Ok(Response::new(pb::AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        req: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let name = req.get_ref().name.clone();
        self.auth_read(&req, |u| u == name)?;
        let state = self.auth.state();
        let user = state
            .user(&name)
            .ok_or_else(|| kv_error(KvError::UserNotFound))?;
        Ok(Response::new(pb::AuthUserGetResponse {
            header: Some(self.header(0)),
            roles: user.roles.iter().cloned().collect(),
        }))
    }

    async fn user_list(
        &self,
        req: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        self.auth_read(&req, |_| false)?;
        Ok(Response::new(pb::AuthUserListResponse {
            header: Some(self.header(0)),
            users: self.auth.state().user_names().map(String::from).collect(),
        }))
    }

    async fn user_delete(
        &self,
        req: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let name = req.get_ref().name.clone();
        let header = Some(
            self.auth_change(&req, AuthCommand::UserDelete { name })
                .await?,
        );
        Ok(Response::new(pb::AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        req: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        // Root, or the user itself; refused before the slow hash, and checked again in the log.
        let name = req.get_ref().name.clone();
        self.auth_read(&req, |u| u == name)?;
        let r = req.get_ref().clone();
        let hash = password_hash(r.password, r.hashed_password, false).await?;
        let cmd = AuthCommand::UserChangePassword {
            name: r.name,
            password_hash: hash,
        };
        let header = Some(self.auth_change(&req, cmd).await?);
        Ok(Response::new(pb::AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        req: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let r = req.get_ref().clone();
        let cmd = AuthCommand::UserGrantRole {
            user: r.user,
            role: r.role,
        };
        let header = Some(self.auth_change(&req, cmd).await?);
        Ok(Response::new(pb::AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let r = req.get_ref().clone();
        let cmd = AuthCommand::UserRevokeRole {
            user: r.name,
            role: r.role,
        };
        let header = Some(self.auth_change(&req, cmd).await?);
        Ok(Response::new(pb::AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(
        &self,
        req: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let name = req.get_ref().name.clone();
        let header = Some(
            self.auth_change(&req, AuthCommand::RoleAdd { name })
                .await?,
        );
        Ok(Response::new(pb::AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        req: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let role = req.get_ref().role.clone();
        let state = self.auth.state();
        self.auth_read(&req, |u| {
            state.user(u).is_some_and(|u| u.roles.contains(&role))
        })?;
        let perms = state
            .role(&role)
            .ok_or_else(|| kv_error(KvError::RoleNotFound))?;
        Ok(Response::new(pb::AuthRoleGetResponse {
            header: Some(self.header(0)),
            perm: perms.iter().map(perm_out).collect(),
        }))
    }

    async fn role_list(
        &self,
        req: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        self.auth_read(&req, |_| false)?;
        Ok(Response::new(pb::AuthRoleListResponse {
            header: Some(self.header(0)),
            roles: self.auth.state().role_names().map(String::from).collect(),
        }))
    }

    async fn role_delete(
        &self,
        req: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let name = req.get_ref().role.clone();
        let header = Some(
            self.auth_change(&req, AuthCommand::RoleDelete { name })
                .await?,
        );
        Ok(Response::new(pb::AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let r = req.get_ref().clone();
        let perm = r
            .perm
            .ok_or_else(|| Status::invalid_argument("etcdserver: permission not given"))?;
        let cmd = AuthCommand::RoleGrantPermission {
            role: r.name,
            perm: perm_in(perm),
        };
        let header = Some(self.auth_change(&req, cmd).await?);
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header,
        }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let r = req.get_ref().clone();
        let cmd = AuthCommand::RoleRevokePermission {
            role: r.role,
            key: r.key,
            range_end: r.range_end,
        };
        let header = Some(self.auth_change(&req, cmd).await?);
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header,
        }))
    }
}
