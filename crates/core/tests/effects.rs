//! `Effects::take_sends_to`: what a collapsed-role process hands itself within a step.

use synod_core::Effects;

#[test]
fn take_sends_to_takes_only_immediate_messages_to_me_in_order() {
    let mut fx: Effects<&str, (), (), ()> = Effects::new();
    fx.send(1, "a");
    fx.send(2, "b");
    fx.send(1, "c");
    fx.send_after_sync(1, "held");
    assert_eq!(fx.take_sends_to(1), vec!["a", "c"]);
    let left: Vec<(u64, &str)> = fx.all_sends().map(|o| (o.to, o.msg)).collect();
    assert_eq!(left, vec![(2, "b"), (1, "held")]);
    assert!(fx.take_sends_to(1).is_empty());
}
