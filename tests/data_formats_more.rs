//! The parsers behind more data-set readers, on inputs written by hand or at test time.

#[test]
fn python2_strings_decode_to_bytes() {
    use gunlearn::torch_io::pickle::{parse, parse_with, Py2Str, Value};
    // Protocol 0 STRING (Python 2's repr), BINSTRING, SHORT_BINSTRING; then UNICODE.
    let mut p = b"(S'a\\x00\\xff\\n\\'\\\\\\101'\nT\x03\x00\x00\x00\xff\x00q".to_vec();
    p.extend_from_slice(b"U\x02\x80zV\xe9\\u20ac\\U0001f600\nt.");
    let (v, used) = parse_with(&p, Py2Str::Bytes).unwrap();
    assert_eq!(used, p.len());
    let want = Value::Tuple(vec![
        Value::Bytes(b"a\x00\xff\n'\\A".to_vec()),
        Value::Bytes(vec![0xff, 0, b'q']),
        Value::Bytes(vec![0x80, b'z']),
        Value::Str("\u{e9}\u{20ac}\u{1f600}".into()),
    ]);
    assert_eq!(v, want);
    // torch's reading stays text.
    let (v, _) = parse(&p).unwrap();
    let Value::Tuple(items) = v else { panic!() };
    assert!(matches!(&items[1], Value::Str(_)));
    for bad in [&b"S'\\x4'\n."[..], b"Sabc\n.", b"S'\\q'\n.", b"V\\u12\n."] {
        let e = format!("{:#}", parse_with(bad, Py2Str::Bytes).unwrap_err());
        assert!(e.contains("offset 0"), "{e}");
    }
}
