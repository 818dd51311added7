//! What the access layer forbids does not compile (`trybuild`; the expected compiler
//! messages sit next to each case). Run with `TRYBUILD=overwrite` to accept new messages
//! after a compiler upgrade — and read them: each must still name the rule.

#[test]
fn access_rules_are_compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
