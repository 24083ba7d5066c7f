//! Property tests: no input makes the parser, checker or template parser panic.

use proptest::prelude::*;
use weir_sql::{Message, Statement, Template};

const TOKENS: &[&str] = &[
    "SELECT",
    "VALUE",
    "*",
    "FROM",
    "'a/+/b'",
    "'#'",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "CONTAINS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "AS",
    "x",
    "a.b",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ",",
    ".",
    ":",
    "=",
    "<>",
    "<",
    ">=",
    "+",
    "-",
    "/",
    "%",
    "1",
    "2.5",
    "-3",
    "'s'",
    "\"d\"",
    "true",
    "null",
    "topic",
    "topic(2)",
    "abs(",
    "substring(",
    "concat(",
    "cast(",
    "Int",
    "regexp_matches(",
    "'('",
    "get(",
    "`q`",
    "${",
    "$",
    "'",
    "\"",
    "aws_lambda(",
    "1e999",
    "99999999999999999999",
    "SET",
    "@v",
    "@w",
    "@",
    "transform(",
    "'enrichArray'",
    "parse_time(",
    "time_to_epoch(",
    "'America/Los_Angeles'",
    "'yyyy-MM-dd ZZZ'",
    "get_mqtt_property(",
    "get_user_properties(",
    "get_or_default(",
    "decode(",
    "'base64'",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..30).prop_map(|v| v.join(" "))
}

fn exercise(s: &str) {
    let payload = serde_json::json!({"a": {"b": [1, "x", {"c": null}]}, "x": 2.5});
    let msg = Message::new("a/b/c", &payload);
    if let Ok(st) = Statement::parse(s) {
        let _ = st.eval(&msg);
    }
    let _ = Statement::diagnostics(s);
    if let Ok(t) = Template::parse(s) {
        let _ = t.render(&msg);
    }
    if let Err(e) = Statement::parse(s) {
        let _ = e.render("f", s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(s in ".{0,80}") {
        exercise(&s);
    }

    #[test]
    fn token_soups_never_panic(s in soup()) {
        exercise(&s);
        exercise(&format!("SELECT {s} FROM 'a/#'"));
        exercise(&format!("SELECT a FROM 'a/#' WHERE {s}"));
        exercise(&format!("x ${{{s}}} y"));
        exercise(&format!("SET @v = {s} SELECT @v AS v FROM 'a/#' WHERE @v <> 1"));
        exercise(&format!("SET @v = 1, @w = {s} SELECT (SELECT VALUE @w FROM a.b) AS n FROM 'a/#'"));
    }

    /// Statements with SET bound for a message, and templates reading
    /// their variables, never panic.
    #[test]
    fn variables_in_templates_never_panic(s in soup(), t in soup()) {
        let payload = serde_json::json!({"a": {"b": [1, "x", {"c": null}]}, "x": 2.5});
        let msg = Message::new("a/b/c", &payload);
        if let Ok(st) = Statement::parse(&format!("SET @v = {s}, @w = @v SELECT * FROM 'a/#'")) {
            let vars = st.bind(&msg);
            let _ = st.eval_with(&msg, &vars);
            let _ = st.where_matches_with(&msg, &vars);
            if let Ok(tpl) = Template::parse_with_variables(&format!("${{@w}}/{t}"), st.variables()) {
                let _ = tpl.render_cow_with(&msg, &vars);
            }
        }
    }
}
