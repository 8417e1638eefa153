//! The JSON-lines form of histories.

mod common;

use common::*;
use synod_check::*;

const SAMPLE: &str = r#"{"client":1,"key":"k","op":"put","value":"v1","call":100,"ret":180,"outcome":"ok"}
{"client":2,"key":"k","op":"get","value":"v1","call":150,"ret":190,"outcome":"ok"}

{"client":2,"key":"k","op":"get","value":"v1","call":200,"ret":230,"outcome":"ok","node":"n2"}
{"client":3,"key":"k","op":"cas","expected":"v1","new":"v2","ok":true,"call":210,"ret":260,"outcome":"ok"}
{"client":1,"key":"k","op":"delete","call":300,"outcome":"info"}
{"client":4,"key":"k","op":"put","value":"v3","call":310,"ret":311,"outcome":"fail"}
{"client":4,"key":"k","op":"get","call":320,"outcome":"unknown"}
"#;

#[test]
fn the_documented_sample_reads_and_checks() {
    let h = read_history(SAMPLE.as_bytes()).unwrap();
    assert_eq!(h.len(), 7);
    assert_eq!(
        h[3].op,
        Op::Cas {
            expected: Some("v1".into()),
            value: "v2".into(),
            ok: true
        }
    );
    assert_eq!((h[4].outcome, h[4].ret), (Outcome::Unknown, None));
    assert_eq!(h[6].op, Op::Get { value: None });
    assert_eq!(
        check(&h, DEFAULT_BUDGET),
        Verdict::Linearizable { ops: 5, keys: 1 }
    );
}

#[test]
fn round_trip() {
    let mut h = register_history(
        3,
        Shape {
            clients: 4,
            per_client: 30,
            keys: 3,
            unknown: 0.2,
            max_latency: 20,
        },
    );
    h.push(get(9, None, 1000, 1001));
    let mut out = Vec::new();
    write_history(&mut out, &h).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), h.len());
    assert_eq!(read_history(text.as_bytes()).unwrap(), h);
    assert!(
        text.contains(r#""op":"get","value":null"#),
        "absent reads say so"
    );
}

#[test]
fn errors_name_the_line_and_the_problem() {
    let err = |text: &str| {
        let text = format!("{}\n{text}\n", SAMPLE.lines().next().unwrap());
        read_history(text.as_bytes()).unwrap_err().to_string()
    };
    let cases = [
        (r#"{"client":1}"#, "missing field"),
        ("not json", "expected"),
        (
            r#"{"client":1,"key":"k","op":"get","call":10,"ret":15,"outcome":"ok"}"#,
            "a get needs \"value\"",
        ),
        (
            r#"{"client":1,"key":"k","op":"put","value":null,"call":10,"ret":15,"outcome":"ok"}"#,
            "cannot be null",
        ),
        (
            r#"{"client":1,"key":"k","op":"cas","value":"b","ok":true,"call":10,"ret":15,"outcome":"ok"}"#,
            "a cas needs \"expected\"",
        ),
        (
            r#"{"client":1,"key":"k","op":"cas","expected":"a","value":"b","call":10,"ret":15,"outcome":"ok"}"#,
            "needs \"ok\"",
        ),
        (
            r#"{"client":1,"key":"k","op":"get","value":null,"call":10,"ret":5,"outcome":"ok"}"#,
            "ret 5 is before call 10",
        ),
        (
            r#"{"client":1,"key":"k","op":"get","value":null,"call":10,"outcome":"ok"}"#,
            "needs a ret",
        ),
        (
            r#"{"client":1,"key":"k","op":"incr","call":10,"ret":15,"outcome":"ok"}"#,
            "unknown variant",
        ),
        (
            r#"{"client":1,"key":"k","op":"get","value":null,"call":10,"ret":15,"outcome":"maybe"}"#,
            "unknown variant",
        ),
    ];
    for (line, why) in cases {
        let e = err(line);
        assert!(e.starts_with("line 2: "), "{line}: {e}");
        assert!(e.contains(why), "{line}: {e:?} should say {why:?}");
    }
}
