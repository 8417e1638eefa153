//! Auth state is replicated state: any sequence of auth changes and user commands, applied with
//! snapshots and restores at any points in between, must give exactly the results and the
//! state of applying it straight through. That is what a replica installing a snapshot from a
//! peer, or restarting from its own, relies on.

use proptest::prelude::*;
use synod_core::multi::StateMachine;
use synod_kv::{
    AuthCommand, DeleteRangeRequest, KvCommand, PermKind, Permission, PutRequest, RangeRequest,
    Store,
};

const USERS: [&str; 3] = ["root", "alice", "bob"];
const ROLES: [&str; 3] = ["root", "r1", "r2"];
const KEYS: [&str; 4] = ["a", "a/x", "b", "c"];

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(KEYS.to_vec()).prop_map(|k| k.as_bytes().to_vec())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"\0".to_vec()),
        Just(b"b".to_vec()),
        Just(b"a0".to_vec()),
    ]
}

fn auth_command() -> impl Strategy<Value = AuthCommand> {
    let user = prop::sample::select(USERS.to_vec()).prop_map(String::from);
    let role = prop::sample::select(ROLES.to_vec()).prop_map(String::from);
    let kind = prop_oneof![
        Just(PermKind::Read),
        Just(PermKind::Write),
        Just(PermKind::ReadWrite)
    ];
    prop_oneof![
        any::<u8>().prop_map(|b| AuthCommand::Enable { secret: vec![b] }),
        Just(AuthCommand::Disable),
        (user.clone(), any::<bool>()).prop_map(|(name, pw)| AuthCommand::UserAdd {
            name,
            password_hash: pw.then(|| "$argon2id$fake".to_string()),
        }),
        user.clone()
            .prop_map(|name| AuthCommand::UserDelete { name }),
        user.clone()
            .prop_map(|name| AuthCommand::UserChangePassword {
                name,
                password_hash: None
            }),
        (user.clone(), role.clone())
            .prop_map(|(user, role)| AuthCommand::UserGrantRole { user, role }),
        (user, role.clone()).prop_map(|(user, role)| AuthCommand::UserRevokeRole { user, role }),
        role.clone().prop_map(|name| AuthCommand::RoleAdd { name }),
        role.clone()
            .prop_map(|name| AuthCommand::RoleDelete { name }),
        (role.clone(), kind, key(), range_end()).prop_map(|(role, kind, key, range_end)| {
            AuthCommand::RoleGrantPermission {
                role,
                perm: Permission {
                    kind,
                    key,
                    range_end,
                },
            }
        }),
        (role, key(), range_end()).prop_map(|(role, key, range_end)| {
            AuthCommand::RoleRevokePermission {
                role,
                key,
                range_end,
            }
        }),
    ]
}

fn command() -> impl Strategy<Value = KvCommand> {
    let plain = prop_oneof![
        auth_command().prop_map(KvCommand::Auth),
        (key(), any::<u8>()).prop_map(|(key, v)| KvCommand::Put(PutRequest {
            key,
            value: vec![v].into(),
            prev_kv: v % 2 == 0,
            ..Default::default()
        })),
        (key(), range_end()).prop_map(|(key, range_end)| {
            KvCommand::Range(Box::new(RangeRequest {
                key,
                range_end,
                ..Default::default()
            }))
        }),
        (key(), range_end()).prop_map(|(key, range_end)| {
            KvCommand::DeleteRange(DeleteRangeRequest {
                key,
                range_end,
                prev_kv: false,
            })
        }),
    ];
    let user = prop::option::of(prop::sample::select(USERS.to_vec()).prop_map(String::from));
    (plain, user).prop_map(|(cmd, user)| cmd.run_as(user))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn snapshots_anywhere_change_nothing(
        cmds in prop::collection::vec(command(), 1..80),
        cuts in prop::collection::vec(any::<bool>(), 80),
    ) {
        let mut straight = Store::new();
        let mut cut = Store::new();
        for (i, cmd) in cmds.iter().enumerate() {
            if cuts[i] {
                cut = Store::restore(&cut.snapshot()).expect("a snapshot restores");
            }
            let a = straight.apply(cmd);
            let b = cut.apply(cmd);
            prop_assert_eq!(&a, &b, "command {} ({:?})", i, cmd);
        }
        prop_assert_eq!(straight.auth(), cut.auth());
        prop_assert_eq!(straight.snapshot(), cut.snapshot());
    }
}
