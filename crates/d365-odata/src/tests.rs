//! Parser tests: every construct, precedence, error texts and positions, and the examples of
//! the Dataverse reference (shared/reference/dataverse-web-api.md §4) verbatim.

use crate::*;

// ------------------------------------------------------------------------------- helpers

fn no() -> Aliases {
    Aliases::new()
}

fn f(s: &str) -> Expr {
    parse_filter(s, &no()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn fa(s: &str, aliases: &[(&str, &str)]) -> Expr {
    parse_filter(s, &Aliases::from_pairs(aliases.iter().copied())).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn ferr(s: &str) -> ParseError {
    match parse_filter(s, &no()) {
        Ok(e) => panic!("{s:?} unexpectedly parsed: {e:?}"),
        Err(e) => e,
    }
}

fn msg(s: &str) -> String {
    ferr(s).message
}

fn p(segs: &[&str]) -> Expr {
    Expr::Path(PropertyPath::new(segs.iter().copied()))
}

fn vp(var: &str, segs: &[&str]) -> Expr {
    Expr::Path(PropertyPath { variable: Some(var.into()), segments: segs.iter().map(|s| s.to_string()).collect() })
}

fn pp(segs: &[&str]) -> PropertyPath {
    PropertyPath::new(segs.iter().copied())
}

fn s(v: &str) -> Expr {
    Expr::Literal(Literal::String(v.into()))
}

fn i(v: i64) -> Expr {
    Expr::Literal(Literal::Int(v))
}

fn lit(l: Literal) -> Expr {
    Expr::Literal(l)
}

fn null() -> Expr {
    lit(Literal::Null)
}

fn num(text: &str, kind: NumberKind) -> Expr {
    lit(Literal::Number { text: text.into(), kind })
}

fn cmp(op: CompareOp, l: Expr, r: Expr) -> Expr {
    Expr::Compare { op, left: Box::new(l), right: Box::new(r) }
}

fn eq(l: Expr, r: Expr) -> Expr {
    cmp(CompareOp::Eq, l, r)
}

fn arith(op: ArithOp, l: Expr, r: Expr) -> Expr {
    Expr::Arith { op, left: Box::new(l), right: Box::new(r) }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Call { name: name.into(), args }
}

fn qf(name: &str, params: Vec<(&str, Expr)>) -> Expr {
    Expr::QueryFunction(QueryFunction {
        name: name.into(),
        params: params.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
    })
}

fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

fn lambda(coll: PropertyPath, kind: LambdaKind, var: &str, pred: Expr) -> Expr {
    Expr::Lambda(Lambda { collection: coll, kind, variable: Some(var.into()), predicate: Some(Box::new(pred)) })
}

fn strs(v: &[&str]) -> Expr {
    Expr::Array(v.iter().map(|x| Literal::String((*x).into())).collect())
}

/// Display → parse gives the same tree.
fn round_trip(e: &Expr) {
    let text = e.to_string();
    let back = parse_filter(&text, &no()).unwrap_or_else(|err| panic!("{text:?}: {err}"));
    assert_eq!(&back, e, "round trip through {text:?}");
}

// ------------------------------------------------------------------------------- comparisons

#[test]
fn comparison_operators() {
    for (kw, op) in [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ] {
        assert_eq!(f(&format!("revenue {kw} 100000")), cmp(op, p(&["revenue"]), i(100000)));
        assert_eq!(op.as_str(), kw);
    }
}

#[test]
fn reference_comparison_examples() {
    assert_eq!(f("revenue gt 100000"), cmp(CompareOp::Gt, p(&["revenue"]), i(100000)));
    assert_eq!(f("name eq 'Contoso'"), eq(p(&["name"]), s("Contoso")));
    assert_eq!(f("statecode eq 0"), eq(p(&["statecode"]), i(0)));
    assert_eq!(
        f("_parentcustomerid_value eq 7a914942-34cb-ed11-b596-0022481d68cd"),
        eq(p(&["_parentcustomerid_value"]), lit(Literal::Guid("7a914942-34cb-ed11-b596-0022481d68cd".into())))
    );
    // quoted GUID stays a string; the emulator accepts both
    assert_eq!(
        f("_parentcustomerid_value eq '7a914942-34cb-ed11-b596-0022481d68cd'"),
        eq(p(&["_parentcustomerid_value"]), s("7a914942-34cb-ed11-b596-0022481d68cd"))
    );
    assert_eq!(f("revenue ne null"), cmp(CompareOp::Ne, p(&["revenue"]), null()));
    assert_eq!(f("firstname eq lastname"), eq(p(&["firstname"]), p(&["lastname"])));
    assert_eq!(
        f("primarycontactid/fullname eq 'Susanna Stubberod'"),
        eq(p(&["primarycontactid", "fullname"]), s("Susanna Stubberod"))
    );
    assert_eq!(
        f("primarycontactid/createdby/fullname eq 'x'"),
        eq(p(&["primarycontactid", "createdby", "fullname"]), s("x"))
    );
    assert_eq!(f("lastname eq 'O''Bryan'"), eq(p(&["lastname"]), s("O'Bryan")));
}

#[test]
fn literals_in_filters() {
    assert_eq!(f("a eq true"), eq(p(&["a"]), lit(Literal::Bool(true))));
    assert_eq!(f("a eq false"), eq(p(&["a"]), lit(Literal::Bool(false))));
    assert_eq!(f("a eq null"), eq(p(&["a"]), null()));
    assert_eq!(f("a eq -3"), eq(p(&["a"]), i(-3)));
    assert_eq!(f("a eq 1.25"), eq(p(&["a"]), num("1.25", NumberKind::Decimal)));
    assert_eq!(f("a eq 1.25m"), eq(p(&["a"]), num("1.25m", NumberKind::Decimal)));
    assert_eq!(f("a eq 2.5e3"), eq(p(&["a"]), num("2.5e3", NumberKind::Double)));
    assert_eq!(f("a eq 1.5d"), eq(p(&["a"]), num("1.5d", NumberKind::Double)));
    assert_eq!(f("a eq 1.5f"), eq(p(&["a"]), num("1.5f", NumberKind::Single)));
    assert_eq!(f("a eq 12L"), eq(p(&["a"]), i(12)));
    assert_eq!(f("a eq INF"), eq(p(&["a"]), num("INF", NumberKind::Double)));
    assert_eq!(f("a eq -INF"), eq(p(&["a"]), num("-INF", NumberKind::Double)));
    assert_eq!(f("a eq NaN"), eq(p(&["a"]), num("NaN", NumberKind::Double)));
    assert_eq!(f("a eq 12345678901234567890"), eq(p(&["a"]), num("12345678901234567890", NumberKind::Decimal)));
    assert_eq!(f("a eq ''"), eq(p(&["a"]), s("")));
    assert_eq!(f("a eq 'it''s'"), eq(p(&["a"]), s("it's")));
    assert_eq!(f("a eq 'x eq 1 and ('"), eq(p(&["a"]), s("x eq 1 and (")));
    assert_eq!(f("a eq 'Zürich 東京 😀'"), eq(p(&["a"]), s("Zürich 東京 😀")));
    assert_eq!(
        f("a eq 7A914942-34CB-ED11-B596-0022481D68CD"),
        eq(p(&["a"]), lit(Literal::Guid("7a914942-34cb-ed11-b596-0022481d68cd".into())))
    );
    assert_eq!(
        f("a eq ffffffff-ffff-ffff-ffff-ffffffffffff"),
        eq(p(&["a"]), lit(Literal::Guid("ffffffff-ffff-ffff-ffff-ffffffffffff".into())))
    );
    assert_eq!(
        f("createdon ge 2023-01-01"),
        cmp(CompareOp::Ge, p(&["createdon"]), lit(Literal::Date(Date { year: 2023, month: 1, day: 1 })))
    );
    let Expr::Compare { right, .. } = f("createdon gt 2023-01-01T00:00:00Z") else { panic!() };
    let Expr::Literal(Literal::DateTimeOffset(d)) = *right else { panic!() };
    assert_eq!(d.text, "2023-01-01T00:00:00Z");
    assert_eq!(d.to_utc_string(), "2023-01-01T00:00:00Z");
    let Expr::Compare { right, .. } = f("createdon lt 2023-06-30T23:15:00.125+02:00") else { panic!() };
    let Expr::Literal(Literal::DateTimeOffset(d)) = *right else { panic!() };
    assert_eq!(d.offset_minutes, 120);
    assert_eq!(d.nanosecond, 125_000_000);
    assert_eq!(d.to_utc_string(), "2023-06-30T21:15:00.125Z");
    assert_eq!(
        f("AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'"),
        eq(
            p(&["AttributeType"]),
            lit(Literal::Enum {
                type_name: "Microsoft.Dynamics.CRM.AttributeTypeCode".into(),
                value: "Picklist".into()
            })
        )
    );
    assert_eq!(
        f("RequiredLevel/Value eq Microsoft.Dynamics.CRM.AttributeRequiredLevel'ApplicationRequired'"),
        eq(
            p(&["RequiredLevel", "Value"]),
            lit(Literal::Enum {
                type_name: "Microsoft.Dynamics.CRM.AttributeRequiredLevel".into(),
                value: "ApplicationRequired".into()
            })
        )
    );
    assert_eq!(f("d eq duration'P1DT2H'"), eq(p(&["d"]), lit(Literal::Duration("P1DT2H".into()))));
}

#[test]
fn literal_on_the_left_and_whitespace() {
    assert_eq!(f("0 eq statecode"), eq(i(0), p(&["statecode"])));
    assert_eq!(f("  name\teq\n'x'  "), eq(p(&["name"]), s("x")));
    assert_eq!(f("(name eq 'x')"), eq(p(&["name"]), s("x")));
    assert_eq!(f("( ( name eq 'x' ) )"), eq(p(&["name"]), s("x")));
    // non-breaking and ideographic spaces count as whitespace too
    assert_eq!(f("name\u{a0}eq\u{3000}'x'"), eq(p(&["name"]), s("x")));
    assert_eq!(f("名前 eq 'é'"), eq(p(&["名前"]), s("é")));
}

// ------------------------------------------------------------------------------- precedence

#[test]
fn and_binds_tighter_than_or() {
    let a = || eq(p(&["a"]), i(1));
    let b = || eq(p(&["b"]), i(2));
    let c = || eq(p(&["c"]), i(3));
    assert_eq!(f("a eq 1 or b eq 2 and c eq 3"), Expr::Or(vec![a(), Expr::And(vec![b(), c()])]));
    assert_eq!(f("a eq 1 and b eq 2 or c eq 3"), Expr::Or(vec![Expr::And(vec![a(), b()]), c()]));
    assert_eq!(f("(a eq 1 or b eq 2) and c eq 3"), Expr::And(vec![Expr::Or(vec![a(), b()]), c()]));
    assert_eq!(f("a eq 1 and (b eq 2 or c eq 3)"), Expr::And(vec![a(), Expr::Or(vec![b(), c()])]));
    // chains are flat
    assert_eq!(f("a eq 1 or b eq 2 or c eq 3"), Expr::Or(vec![a(), b(), c()]));
    assert_eq!(f("a eq 1 and b eq 2 and c eq 3"), Expr::And(vec![a(), b(), c()]));
    // parentheses keep their grouping
    assert_eq!(f("(a eq 1 or b eq 2) or c eq 3"), Expr::Or(vec![Expr::Or(vec![a(), b()]), c()]));
}

#[test]
fn not_binds_tighter_than_comparison() {
    assert_eq!(f("not contains(name,'x')"), not(call("contains", vec![p(&["name"]), s("x")])));
    assert_eq!(f("not a eq b"), eq(not(p(&["a"])), p(&["b"])));
    assert_eq!(f("not (a eq b)"), not(eq(p(&["a"]), p(&["b"]))));
    assert_eq!(f("not(a eq b)"), not(eq(p(&["a"]), p(&["b"]))));
    assert_eq!(f("not not a"), not(not(p(&["a"]))));
    assert_eq!(
        f("not startswith(name,'a') and statecode eq 0"),
        Expr::And(vec![not(call("startswith", vec![p(&["name"]), s("a")])), eq(p(&["statecode"]), i(0))])
    );
    assert_eq!(f("a eq 1 or not b"), Expr::Or(vec![eq(p(&["a"]), i(1)), not(p(&["b"]))]));
}

#[test]
fn arithmetic_precedence_and_associativity() {
    assert_eq!(f("a add 1 mul 2 eq 3"), eq(arith(ArithOp::Add, p(&["a"]), arith(ArithOp::Mul, i(1), i(2))), i(3)));
    assert_eq!(
        f("a sub b sub c eq 0"),
        eq(arith(ArithOp::Sub, arith(ArithOp::Sub, p(&["a"]), p(&["b"])), p(&["c"])), i(0))
    );
    assert_eq!(
        f("a div 2 mod 3 gt 0"),
        cmp(CompareOp::Gt, arith(ArithOp::Mod, arith(ArithOp::Div, p(&["a"]), i(2)), i(3)), i(0))
    );
    assert_eq!(f("(a add 1) mul 2 eq 4"), eq(arith(ArithOp::Mul, arith(ArithOp::Add, p(&["a"]), i(1)), i(2)), i(4)));
    assert_eq!(f("a sub -1 eq 0"), eq(arith(ArithOp::Sub, p(&["a"]), i(-1)), i(0)));
    // comparisons chain left-associatively (ODataLib does; binding rejects it)
    assert_eq!(f("a eq b eq c"), eq(eq(p(&["a"]), p(&["b"])), p(&["c"])));
    assert_eq!(ArithOp::Mod.as_str(), "mod");
}

#[test]
fn unary_minus() {
    assert_eq!(f("a eq - 5"), eq(p(&["a"]), i(-5)));
    assert_eq!(f("a eq - 1.5"), eq(p(&["a"]), num("-1.5", NumberKind::Decimal)));
    assert_eq!(f("a eq - INF"), eq(p(&["a"]), num("-INF", NumberKind::Double)));
    assert_eq!(f("a eq - 9223372036854775808"), eq(p(&["a"]), i(i64::MIN)));
    assert_eq!(f("-a eq 1"), eq(Expr::Negate(Box::new(p(&["a"]))), i(1)));
    assert_eq!(f("-(a) eq 1"), eq(Expr::Negate(Box::new(p(&["a"]))), i(1)));
    assert_eq!(f("- -5 eq 5"), eq(Expr::Negate(Box::new(i(-5))), i(5)));
}

#[test]
fn has_operator_is_parsed() {
    assert_eq!(
        f("flags has Ns.Color'Red'"),
        Expr::Has {
            left: Box::new(p(&["flags"])),
            right: Box::new(lit(Literal::Enum { type_name: "Ns.Color".into(), value: "Red".into() }))
        }
    );
}

// ------------------------------------------------------------------------------- paths

#[test]
fn property_paths() {
    assert_eq!(f("name"), p(&["name"]));
    assert_eq!(f("RequiredLevel/Value"), p(&["RequiredLevel", "Value"]));
    assert_eq!(f("a / b"), p(&["a", "b"]));
    assert_eq!(
        f("regardingobjectid/Microsoft.Dynamics.CRM.contact/fullname eq 'x'"),
        eq(p(&["regardingobjectid", "Microsoft.Dynamics.CRM.contact", "fullname"]), s("x"))
    );
    assert_eq!(f("$it/name eq 'x'"), eq(vp("$it", &["name"]), s("x")));
    assert_eq!(f("Account_Tasks/$count gt 0"), cmp(CompareOp::Gt, p(&["Account_Tasks", "$count"]), i(0)));
    let e = f("primarycontactid/fullname");
    assert_eq!(e.as_path().map(|p| p.segments.len()), Some(2));
    assert_eq!(f("name").as_path().and_then(PropertyPath::single), Some("name"));
    assert_eq!(f("a/b").as_path().and_then(PropertyPath::single), None);
}

#[test]
fn path_errors() {
    assert_eq!(msg("a/"), "Syntax error at position 2 in 'a/'.");
    assert_eq!(msg("a/'x'"), "Syntax error at position 5 in 'a/'x''.");
    assert_eq!(msg("a//b"), "Syntax error at position 3 in 'a//b'.");
    // a bound function call inside a path
    assert_eq!(ferr("a/Ns.F(1) eq 1").kind, ErrorKind::Syntax);
    // member access on a non-path
    assert_eq!(msg("tolower(a)/b eq 'x'"), "Syntax error at position 11 in 'tolower(a)/b eq 'x''.");
}

// ------------------------------------------------------------------------------- functions

#[test]
fn string_functions() {
    assert_eq!(f("contains(name,'sample')"), call("contains", vec![p(&["name"]), s("sample")]));
    assert_eq!(f("startswith(name,'a')"), call("startswith", vec![p(&["name"]), s("a")]));
    assert_eq!(f("endswith(name,'Inc.')"), call("endswith", vec![p(&["name"]), s("Inc.")]));
    assert_eq!(f("contains( name , 'x%_[a-c][^d]' )"), call("contains", vec![p(&["name"]), s("x%_[a-c][^d]")]));
    assert_eq!(
        f("contains(tolower(name),tolower('X'))"),
        call("contains", vec![call("tolower", vec![p(&["name"])]), call("tolower", vec![s("X")])])
    );
    assert_eq!(
        f("length(trim(name)) gt 5"),
        cmp(CompareOp::Gt, call("length", vec![call("trim", vec![p(&["name"])])]), i(5))
    );
    assert_eq!(
        f("year(createdon) eq 2023 and month(createdon) eq 1 and day(createdon) eq 2"),
        Expr::And(vec![
            eq(call("year", vec![p(&["createdon"])]), i(2023)),
            eq(call("month", vec![p(&["createdon"])]), i(1)),
            eq(call("day", vec![p(&["createdon"])]), i(2)),
        ])
    );
    assert_eq!(f("now() gt createdon"), cmp(CompareOp::Gt, call("now", vec![]), p(&["createdon"])));
    // name is kept as written; the consumer decides
    assert_eq!(f("ToUpper(x)"), call("ToUpper", vec![p(&["x"])]));
    assert_eq!(f("substringof('a',name)"), call("substringof", vec![s("a"), p(&["name"])]));
    assert_eq!(f("Ns.Fn(1,2)"), call("Ns.Fn", vec![i(1), i(2)]));
}

#[test]
fn function_call_errors() {
    assert_eq!(msg("contains(name 'a')"), "')' or ',' expected at position 14 in 'contains(name 'a')'.");
    assert_eq!(msg("contains(name,'a'"), "')' or ',' expected at position 17 in 'contains(name,'a''.");
    assert_eq!(msg("contains(name,)"), "Expression expected at position 14 in 'contains(name,)'.");
    assert_eq!(msg("contains(,name)"), "Expression expected at position 9 in 'contains(,name)'.");
    // ODataLib needs the '(' right after the name: with a space it is a property followed by junk
    assert_eq!(msg("contains (name,'x')"), "Syntax error at position 10 in 'contains (name,'x')'.");
}

#[test]
fn reference_query_function_examples() {
    assert_eq!(
        f(r#"Microsoft.Dynamics.CRM.Between(PropertyName='numberofemployees',PropertyValues=["5","2000"])"#),
        qf(
            "Microsoft.Dynamics.CRM.Between",
            vec![("PropertyName", s("numberofemployees")), ("PropertyValues", strs(&["5", "2000"]))]
        )
    );
    assert_eq!(
        f("Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=7)"),
        qf("Microsoft.Dynamics.CRM.LastXDays", vec![("PropertyName", s("createdon")), ("PropertyValue", i(7))])
    );
    assert_eq!(
        f("Microsoft.Dynamics.CRM.On(PropertyName='createdon',PropertyValue='2023-04-07')"),
        qf("Microsoft.Dynamics.CRM.On", vec![("PropertyName", s("createdon")), ("PropertyValue", s("2023-04-07"))])
    );
    assert_eq!(
        f("Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=['1','2'])"),
        qf("Microsoft.Dynamics.CRM.In", vec![("PropertyName", s("statuscode")), ("PropertyValues", strs(&["1", "2"]))])
    );
    let Expr::QueryFunction(q) = f(
        "Microsoft.Dynamics.CRM.InFiscalPeriodAndYear(PropertyName='createdon',PropertyValue1=3,PropertyValue2=2023)",
    ) else {
        panic!()
    };
    assert_eq!(q.short_name(), "InFiscalPeriodAndYear");
    assert_eq!(q.namespace(), "Microsoft.Dynamics.CRM");
    assert_eq!(q.param("PropertyValue1"), Some(&i(3)));
    assert_eq!(q.param("PropertyValue2"), Some(&i(2023)));
    assert_eq!(
        f("Microsoft.Dynamics.CRM.Today(PropertyName='createdon')"),
        qf("Microsoft.Dynamics.CRM.Today", vec![("PropertyName", s("createdon"))])
    );
    assert_eq!(
        f("Microsoft.Dynamics.CRM.EqualUserId(PropertyName='ownerid') and statecode eq 0"),
        Expr::And(vec![
            qf("Microsoft.Dynamics.CRM.EqualUserId", vec![("PropertyName", s("ownerid"))]),
            eq(p(&["statecode"]), i(0))
        ])
    );
    assert_eq!(
        f("not Microsoft.Dynamics.CRM.ContainValues(PropertyName='x',PropertyValues=['2'])"),
        not(qf(
            "Microsoft.Dynamics.CRM.ContainValues",
            vec![("PropertyName", s("x")), ("PropertyValues", strs(&["2"]))]
        ))
    );
    // qualified, no parameters
    assert_eq!(f("Microsoft.Dynamics.CRM.Foo()"), qf("Microsoft.Dynamics.CRM.Foo", vec![]));
    // unqualified with named parameters is still a query function (the consumer decides)
    assert_eq!(f("In(PropertyName='a')"), qf("In", vec![("PropertyName", s("a"))]));
    // whitespace around '=' and inside arrays
    assert_eq!(
        f("Microsoft.Dynamics.CRM.In( PropertyName = 'a' , PropertyValues = [ 'x' , \"y\" ] )"),
        qf("Microsoft.Dynamics.CRM.In", vec![("PropertyName", s("a")), ("PropertyValues", strs(&["x", "y"]))])
    );
    // numbers, booleans and null in arrays
    assert_eq!(
        f("Ns.F(PropertyValues=[1,2.5,true,null])"),
        qf(
            "Ns.F",
            vec![(
                "PropertyValues",
                Expr::Array(vec![
                    Literal::Int(1),
                    Literal::Number { text: "2.5".into(), kind: NumberKind::Decimal },
                    Literal::Bool(true),
                    Literal::Null
                ])
            )]
        )
    );
}

#[test]
fn query_function_errors() {
    assert_eq!(
        ferr("Ns.F(A=1,A=2)").message,
        "Parameter names must be unique: 'A' appears twice at position 9 in 'Ns.F(A=1,A=2)'."
    );
    assert_eq!(msg("Ns.F(A=1,2)"), "Syntax error at position 9 in 'Ns.F(A=1,2)'.");
    assert_eq!(msg("Ns.F(1,A=2)"), "Syntax error at position 7 in 'Ns.F(1,A=2)'.");
    assert_eq!(msg("Ns.F(A=)"), "Expression expected at position 7 in 'Ns.F(A=)'.");
    // the reference's bad-array example
    let e = ferr("Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=['O'Brian','OBrian'])");
    assert_eq!(e.kind, ErrorKind::InvalidJson);
    assert!(
        e.message.starts_with("Invalid JSON. A comma character ',' was expected in scope 'Array'."),
        "{}",
        e.message
    );
    assert_eq!(ferr("Ns.F(P=['a'").kind, ErrorKind::InvalidJson);
}

// ------------------------------------------------------------------------------- lambdas

#[test]
fn lambdas() {
    assert_eq!(
        f("Account_Tasks/any(t:t/statecode eq 1)"),
        lambda(pp(&["Account_Tasks"]), LambdaKind::Any, "t", eq(vp("t", &["statecode"]), i(1)))
    );
    assert_eq!(
        f("Account_Tasks/all(t:t/statecode eq 1)"),
        lambda(pp(&["Account_Tasks"]), LambdaKind::All, "t", eq(vp("t", &["statecode"]), i(1)))
    );
    assert_eq!(
        f("Account_Tasks/any( t : t/statecode eq 1 and contains(t/subject,'x') )"),
        lambda(
            pp(&["Account_Tasks"]),
            LambdaKind::Any,
            "t",
            Expr::And(vec![eq(vp("t", &["statecode"]), i(1)), call("contains", vec![vp("t", &["subject"]), s("x")])])
        )
    );
    // nested; the inner lambda's collection is rooted at the outer variable; outer
    // variables stay visible inside
    assert_eq!(
        f("contact_customer_accounts/any(c:c/Contact_Tasks/any(t:t/subject eq c/fullname))"),
        lambda(
            pp(&["contact_customer_accounts"]),
            LambdaKind::Any,
            "c",
            Expr::Lambda(Lambda {
                collection: PropertyPath { variable: Some("c".into()), segments: vec!["Contact_Tasks".into()] },
                kind: LambdaKind::Any,
                variable: Some("t".into()),
                predicate: Some(Box::new(eq(vp("t", &["subject"]), vp("c", &["fullname"])))),
            })
        )
    );
    // argument-less
    assert_eq!(
        f("Account_Tasks/any()"),
        Expr::Lambda(Lambda {
            collection: pp(&["Account_Tasks"]),
            kind: LambdaKind::Any,
            variable: None,
            predicate: None
        })
    );
    // the bare variable, a path through a lookup, a lambda combined with other conditions
    assert_eq!(f("tags/any(x:x eq 'a')"), lambda(pp(&["tags"]), LambdaKind::Any, "x", eq(vp("x", &[]), s("a"))));
    assert_eq!(
        f("primarycontactid/Contact_Tasks/any(t:t/statecode eq 0) and name ne null"),
        Expr::And(vec![
            lambda(pp(&["primarycontactid", "Contact_Tasks"]), LambdaKind::Any, "t", eq(vp("t", &["statecode"]), i(0))),
            cmp(CompareOp::Ne, p(&["name"]), null())
        ])
    );
    // outside its lambda, `t` is an ordinary property name again
    assert_eq!(
        f("a/any(t:t/x eq 1) and t/x eq 2"),
        Expr::And(vec![lambda(pp(&["a"]), LambdaKind::Any, "t", eq(vp("t", &["x"]), i(1))), eq(p(&["t", "x"]), i(2))])
    );
    // inside, a name other than the variable is a property of the outer entity
    assert_eq!(f("a/any(t:name eq 'x')"), lambda(pp(&["a"]), LambdaKind::Any, "t", eq(p(&["name"]), s("x"))));
    assert_eq!(LambdaKind::All.as_str(), "all");
}

#[test]
fn lambda_errors() {
    assert_eq!(msg("a/any"), "'(' expected at position 5 in 'a/any'.");
    assert_eq!(msg("a/any t"), "'(' expected at position 6 in 'a/any t'.");
    assert_eq!(msg("a/any(t t eq 1)"), "Syntax error at position 9 in 'a/any(t t eq 1)'.");
    assert_eq!(msg("a/any(1:x)"), "An identifier was expected at position 6.");
    assert_eq!(msg("a/any(t:t/x eq 1"), "')' or ',' expected at position 16 in 'a/any(t:t/x eq 1'.");
    assert_eq!(msg("a/any(t:t/b/any(t:t/x eq 1))"), "The range variable 't' has already been declared.");
    assert_eq!(msg("a/any($it:true)"), "The range variable '$it' has already been declared.");
    assert_eq!(msg("a/any(t:)"), "Expression expected at position 8 in 'a/any(t:)'.");
    assert_eq!(msg("a/any(t:t/x eq 1)/b"), "Syntax error at position 18 in 'a/any(t:t/x eq 1)/b'.");
}

// ------------------------------------------------------------------------------- aliases

#[test]
fn reference_alias_examples() {
    let e = fa(
        "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)",
        &[("@p1", "'lastname'"), ("@p2", r#"["O'Brian","OBrian"]"#)],
    );
    assert_eq!(
        e,
        qf(
            "Microsoft.Dynamics.CRM.In",
            vec![("PropertyName", s("lastname")), ("PropertyValues", strs(&["O'Brian", "OBrian"]))]
        )
    );
    // $orderby=@p1 asc&$filter=@p1 ne null&@p1=revenue
    let aliases = Aliases::from_pairs([("@p1", "revenue")]);
    assert_eq!(parse_filter("@p1 ne null", &aliases).unwrap(), cmp(CompareOp::Ne, p(&["revenue"]), null()));
    assert_eq!(
        parse_orderby("@p1 asc", &aliases).unwrap(),
        vec![OrderByItem { expr: p(&["revenue"]), direction: Direction::Asc }]
    );
}

#[test]
fn alias_behaviour() {
    // unassigned → null
    assert_eq!(f("name eq @missing"), eq(p(&["name"]), null()));
    // names with or without '@' in the map
    let mut a = Aliases::new();
    a.insert("p", "5");
    assert_eq!(a.get("@p"), Some("5"));
    assert_eq!(a.get("p"), Some("5"));
    assert_eq!(a.len(), 1);
    assert!(!a.is_empty());
    assert_eq!(parse_filter("x eq @p", &a).unwrap(), eq(p(&["x"]), i(5)));
    // borrowed pairs, as the emulator holds them
    let owned: Vec<(String, String)> = vec![("@x".into(), "1".into())];
    let slice: &[(String, String)] = &owned;
    assert_eq!(Aliases::from_pairs(slice).get("x"), Some("1"));
    assert!(QueryOptions::parse(slice).is_ok());
    // from_pairs keeps only '@' keys
    let a = Aliases::from_pairs(vec![("$filter".to_string(), "x".to_string()), ("@a".into(), "1".into())]);
    assert_eq!(a.len(), 1);
    // an alias may hold any expression, and aliases may refer to aliases
    assert_eq!(fa("@c", &[("@c", "a eq @v"), ("@v", "'x'")]), eq(p(&["a"]), s("x")));
    assert_eq!(
        fa("x eq @d", &[("@d", "2023-01-01")]),
        eq(p(&["x"]), lit(Literal::Date(Date { year: 2023, month: 1, day: 1 })))
    );
    // an error inside an alias value is reported against the alias text
    let e = parse_filter("x eq @p", &Aliases::from_pairs([("@p", "'abc")])).unwrap_err();
    assert_eq!(e.message, "There is an unterminated string literal at position 4 in ''abc'.");
    assert_eq!(e.input, "'abc");
    let e = parse_filter("x eq @p", &Aliases::from_pairs([("@p", "1 2")])).unwrap_err();
    assert_eq!(e.message, "Syntax error at position 3 in '1 2'.");
    // cycles
    let e = parse_filter("x eq @p", &Aliases::from_pairs([("@p", "@p")])).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooDeep);
    let e = parse_filter("x eq @a", &Aliases::from_pairs([("@a", "@b"), ("@b", "@a")])).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooDeep);
    // range variables do not leak into alias values
    assert_eq!(
        fa("a/any(t:t/x eq @v)", &[("@v", "t")]),
        lambda(pp(&["a"]), LambdaKind::Any, "t", eq(vp("t", &["x"]), p(&["t"])))
    );
}

#[test]
fn alias_expansion_is_bounded() {
    // @p0 = @p1 add @p1, @p1 = @p2 add @p2, … would double at every level
    let mut pairs = Vec::new();
    for k in 0..40 {
        pairs.push((format!("@p{k}"), format!("@p{n} add @p{n}", n = k + 1)));
    }
    pairs.push(("@p40".to_string(), "1".to_string()));
    let e = parse_filter("x eq @p0", &Aliases::from_pairs(pairs)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooDeep);
    assert_eq!(e.message, "Parameter alias expansion is too large.");
}

// ------------------------------------------------------------------------------- errors

#[test]
fn reference_error_examples() {
    let e = ferr("lastname eq 'O'Bryan'");
    assert_eq!(e.message, "There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''.");
    assert_eq!(e.kind, ErrorKind::UnterminatedLiteral);
    assert_eq!(e.position, 21);
    assert_eq!(e.byte_offset, 21);
    assert_eq!(e.input, "lastname eq 'O'Bryan'");
}

#[test]
fn syntax_error_positions() {
    assert_eq!(msg(""), "Expression expected at position 0 in ''.");
    assert_eq!(msg("   "), "Expression expected at position 3 in '   '.");
    assert_eq!(msg("name eq"), "Expression expected at position 7 in 'name eq'.");
    assert_eq!(msg("name eq 'a' foo"), "Syntax error at position 15 in 'name eq 'a' foo'.");
    assert_eq!(msg("name eq 'a')"), "Syntax error at position 12 in 'name eq 'a')'.");
    assert_eq!(msg("(name eq 'a'"), "')' or operator expected at position 12 in '(name eq 'a''.");
    assert_eq!(msg("(name eq 'a' foo)"), "')' or operator expected at position 13 in '(name eq 'a' foo)'.");
    // a keyword in operand position is just a (strange) property name, as in ODataLib
    assert_eq!(f("and"), p(&["and"]));
    assert_eq!(f("a eq 1 and and"), Expr::And(vec![eq(p(&["a"]), i(1)), p(&["and"])]));
    assert_eq!(msg("a eq 1 and and and"), "Expression expected at position 18 in 'a eq 1 and and and'.");
    assert_eq!(msg("a eq 1 and"), "Expression expected at position 10 in 'a eq 1 and'.");
    assert_eq!(msg("a eq 1 or or b"), "Syntax error at position 14 in 'a eq 1 or or b'.");
    assert_eq!(msg("not"), "Expression expected at position 3 in 'not'.");
    assert_eq!(msg("()"), "Expression expected at position 1 in '()'.");
    assert_eq!(msg(")"), "Expression expected at position 0 in ')'.");
    assert_eq!(msg(","), "Expression expected at position 0 in ','.");
    assert_eq!(
        msg("a eq 'x' and b eq 'y"),
        "There is an unterminated string literal at position 20 in 'a eq 'x' and b eq 'y'."
    );
    // OData 4.01 'in' is not available
    assert_eq!(msg("a in ('x','y')"), "Syntax error at position 4 in 'a in ('x','y')'.");
    // operators are case-sensitive, as in ODataLib
    assert_eq!(msg("a EQ 1"), "Syntax error at position 4 in 'a EQ 1'.");
    // invalid characters
    assert_eq!(msg("name eq \"x\""), "Syntax error: character '\"' is not valid at position 8 in 'name eq \"x\"'.");
    assert_eq!(
        msg("a eq 1 && b eq 2"),
        "Syntax error: character '&' is not valid at position 7 in 'a eq 1 && b eq 2'."
    );
    assert_eq!(ferr("a eq {}").kind, ErrorKind::InvalidCharacter);
    assert_eq!(ferr("a eq 2023-02-30").kind, ErrorKind::InvalidLiteral);
    assert_eq!(ferr("a eq 1.").kind, ErrorKind::InvalidLiteral);
    assert_eq!(ferr("a eq x'1'").kind, ErrorKind::InvalidLiteral);
    assert_eq!(msg("a eq null'x'"), "Syntax error at position 9 in 'a eq null'x''.");
}

#[test]
fn positions_count_utf16_units() {
    // "😀" is one char but two UTF-16 units; .NET reports UTF-16 positions
    let e = ferr("'😀' eq x y");
    assert_eq!(e.message, "Syntax error at position 11 in ''😀' eq x y'.");
    assert_eq!(e.position, 11);
    assert_eq!(e.byte_offset, 13);
    let e = ferr("é eq");
    assert_eq!(e.position, 4);
    assert_eq!(e.byte_offset, 5);
}

#[test]
fn nesting_is_bounded() {
    let nest = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(f(&nest(MAX_DEPTH - 1)), p(&["a"]));
    let e = ferr(&nest(MAX_DEPTH));
    assert_eq!(e.kind, ErrorKind::TooDeep);
    assert_eq!(e.message, "Recursion depth exceeded allowed limit.");
    // much deeper inputs fail the same way, without overflowing the stack
    for s in [
        nest(100_000),
        "(".repeat(100_000),
        format!("{}a", "not ".repeat(10_000)),
        format!("{}a", "-".repeat(10_000)),
        format!("a{}", " add 1".repeat(10_000)),
        format!("a{}", " eq 1".repeat(10_000)),
        format!("{}1{}", "f(".repeat(10_000), ")".repeat(10_000)),
        format!("{}x eq 1{}", "a/any(x:".repeat(10_000), ")".repeat(10_000)),
        "[".repeat(100_000),
    ] {
        assert!(parse_filter(&s, &no()).is_err());
    }
    // flat and/or chains are not nesting
    let long_or = vec!["statecode eq 1"; 5000].join(" or ");
    let Expr::Or(v) = f(&long_or) else { panic!() };
    assert_eq!(v.len(), 5000);
    let long_and = vec!["contains(name,'x')"; 3000].join(" and ");
    let Expr::And(v) = f(&long_and) else { panic!() };
    assert_eq!(v.len(), 3000);
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "'",
        "''",
        "'''",
        "@",
        "@@",
        "[",
        "]",
        "[,]",
        "-",
        "--",
        "- -",
        "a/",
        "/",
        "a/any(",
        "a/any(t",
        "a/any(t:",
        "f(",
        "f(a=",
        "f(a=1,",
        "Ns.F'",
        "Ns.F''",
        "2023-",
        "2023-01-01T",
        "7a914942-34cb-ed11-b596-0022481d68c",
        "\u{0}",
        "\u{feff}a",
        "a\u{0301} eq 1",
        "😀",
        "'\u{10ffff}'",
        "not(",
        "a eq -",
        "1e",
        "0x1F",
        "$",
        "$it",
        "$it/",
        ":",
        "=",
        "a=1",
    ];
    for s in samples {
        let _ = parse_filter(s, &no());
        let _ = parse_orderby(s, &no());
        let _ = parse_apply(s, &no());
        let _ = parse_expand(s);
        let _ = parse_select(s);
    }
}

// ------------------------------------------------------------------------------- display

#[test]
fn display_round_trips() {
    for s in [
        "name eq 'O''Bryan' and (statecode eq 0 or statecode eq 1) and not contains(name,'x')",
        "not a eq b",
        "a add 1 mul -2 sub - c div 3 mod 4 eq 5",
        "Account_Tasks/any(t:t/statecode eq 1 and t/Task_Notes/all(n:n/x ne t/y))",
        "Account_Tasks/any()",
        r#"Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=['1',"2\"'",3,null,true])"#,
        "Microsoft.Dynamics.CRM.Today()",
        "a eq 7a914942-34cb-ed11-b596-0022481d68cd or b eq 2023-01-01 or c eq 2023-01-01T10:00:00.5+01:00",
        "x has Ns.E'A,B' or d eq duration'P1D' or n eq -INF or n eq NaN or n eq 1.5f or n eq 10000000000000000000000",
        "$it/a eq -(b) and -9223372036854775808 lt 1L",
        "- -5 eq 5",
        "tags/any(x:x eq 'a')",
    ] {
        round_trip(&f(s));
    }
}

// ------------------------------------------------------------------------------- $orderby

#[test]
fn orderby() {
    let o = |s: &str| parse_orderby(s, &no()).unwrap_or_else(|e| panic!("{s}: {e}"));
    let item = |e, d| OrderByItem { expr: e, direction: d };
    assert_eq!(
        o("revenue asc,name desc"),
        vec![item(p(&["revenue"]), Direction::Asc), item(p(&["name"]), Direction::Desc)]
    );
    assert_eq!(o("name"), vec![item(p(&["name"]), Direction::Asc)]);
    assert_eq!(
        o(" createdon  desc , primarycontactid/fullname "),
        vec![item(p(&["createdon"]), Direction::Desc), item(p(&["primarycontactid", "fullname"]), Direction::Asc)]
    );
    // any expression is parsed (the consumer refuses non-paths)
    assert_eq!(o("tolower(name) desc"), vec![item(call("tolower", vec![p(&["name"])]), Direction::Desc)]);
    let err = |s: &str| parse_orderby(s, &no()).unwrap_err().message;
    assert_eq!(err(""), "Expression expected at position 0 in ''.");
    assert_eq!(err("name,"), "Expression expected at position 5 in 'name,'.");
    assert_eq!(err("name asc desc"), "Syntax error at position 13 in 'name asc desc'.");
    assert_eq!(err("name up"), "Syntax error at position 7 in 'name up'.");
    assert_eq!(err("name ASC"), "Syntax error at position 8 in 'name ASC'.");
    assert_eq!(Direction::default(), Direction::Asc);
}

// ------------------------------------------------------------------------------- $select

#[test]
fn select() {
    assert_eq!(parse_select("name,revenue").unwrap(), vec!["name", "revenue"]);
    assert_eq!(
        parse_select(" name , _primarycontactid_value ,address1_line1").unwrap(),
        vec!["name", "_primarycontactid_value", "address1_line1"]
    );
    assert_eq!(parse_select("fullname").unwrap(), vec!["fullname"]);
    let err = |s: &str| parse_select(s).unwrap_err();
    assert_eq!(err("name,,x").message, "Syntax error at position 5 in 'name,,x'.");
    assert_eq!(err(",name").message, "Syntax error at position 0 in ',name'.");
    assert_eq!(err("name,").message, "Syntax error at position 5 in 'name,'.");
    assert_eq!(err("name, ").message, "Syntax error at position 6 in 'name, '.");
    assert_eq!(err("").message, "Syntax error at position 0 in ''.");
    assert_eq!(err("a b").message, "Syntax error at position 2 in 'a b'.");
    assert_eq!(
        err("primarycontactid/fullname").message,
        "Syntax error: character '/' is not valid at position 16 in 'primarycontactid/fullname'."
    );
    assert_eq!(err("*").kind, ErrorKind::InvalidCharacter);
    assert_eq!(err("$count").kind, ErrorKind::InvalidCharacter);
    assert_eq!(err("1abc").kind, ErrorKind::InvalidCharacter);
}

// ------------------------------------------------------------------------------- $top / $count

#[test]
fn top_and_count() {
    assert_eq!(parse_top("5").unwrap(), 5);
    assert_eq!(parse_top("0").unwrap(), 0);
    assert_eq!(parse_top(" 7 ").unwrap(), 7);
    assert_eq!(parse_top("+3").unwrap(), 3);
    assert_eq!(parse_top("9223372036854775807").unwrap(), i64::MAX as u64);
    for bad in ["-1", "", "abc", "1.5", "9223372036854775808", "++1", "1 2"] {
        let e = parse_top(bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidValue);
        assert_eq!(
            e.message,
            format!(
                "Invalid value '{bad}' for $top query option found. The $top query option requires a non-negative integer value."
            )
        );
    }
    assert!(parse_count("true").unwrap());
    assert!(!parse_count("false").unwrap());
    assert!(parse_count(" true ").unwrap());
    for bad in ["TRUE", "1", "", "yes"] {
        let e = parse_count(bad).unwrap_err();
        assert_eq!(e.message, format!("'{bad}' is not a valid count option."));
    }
}

// ------------------------------------------------------------------------------- $expand

fn x(s: &str) -> Vec<ExpandItem> {
    parse_expand(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn xerr(s: &str) -> ParseError {
    parse_expand(s).unwrap_err()
}

fn nav(name: &str) -> ExpandItem {
    ExpandItem { navigation: name.into(), is_ref: false, options: ExpandOptions::default() }
}

fn sel(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

#[test]
fn reference_expand_examples() {
    assert_eq!(
        x("primarycontactid($select=contactid,fullname),createdby($select=fullname)"),
        vec![
            ExpandItem {
                options: ExpandOptions { select: sel(&["contactid", "fullname"]), ..Default::default() },
                ..nav("primarycontactid")
            },
            ExpandItem {
                options: ExpandOptions { select: sel(&["fullname"]), ..Default::default() },
                ..nav("createdby")
            },
        ]
    );
    let v = x(
        "regardingobjectid_contact_task($select=fullname;$expand=parentcustomerid_account($select=name;$expand=createdby($select=fullname)))",
    );
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].navigation, "regardingobjectid_contact_task");
    assert_eq!(v[0].options.select, sel(&["fullname"]));
    let l2 = &v[0].options.expand.as_ref().unwrap()[0];
    assert_eq!(l2.navigation, "parentcustomerid_account");
    assert_eq!(l2.options.select, sel(&["name"]));
    let l3 = &l2.options.expand.as_ref().unwrap()[0];
    assert_eq!(l3.navigation, "createdby");
    assert_eq!(l3.options.select, sel(&["fullname"]));
    assert_eq!(l3.options.expand, None);

    assert_eq!(x("primarycontactid/$ref"), vec![ExpandItem { is_ref: true, ..nav("primarycontactid") }]);
    assert_eq!(
        x("Account_Tasks($select=subject;$filter=contains(subject,'Task');$orderby=createdon desc)"),
        vec![ExpandItem {
            options: ExpandOptions {
                select: sel(&["subject"]),
                filter: Some(call("contains", vec![p(&["subject"]), s("Task")])),
                orderby: Some(vec![OrderByItem { expr: p(&["createdon"]), direction: Direction::Desc }]),
                top: None,
                expand: None,
            },
            ..nav("Account_Tasks")
        }]
    );
}

#[test]
fn expand_variants() {
    assert_eq!(x("a,b , c"), vec![nav("a"), nav("b"), nav("c")]);
    assert_eq!(
        x(" a ( $top = 5 ) "),
        vec![ExpandItem { options: ExpandOptions { top: Some(5), ..Default::default() }, ..nav("a") }]
    );
    assert_eq!(x("a/ $ref"), vec![ExpandItem { is_ref: true, ..nav("a") }]);
    // option names are matched case-insensitively
    assert_eq!(x("a($SELECT=b)")[0].options.select, sel(&["b"]));
    // ';' and ')' inside literals do not split options
    let v = x("a($filter=name eq 'x;y)' or Ns.F(P=[\";)\"]);$select=b)");
    assert_eq!(v[0].options.select, sel(&["b"]));
    assert_eq!(
        v[0].options.filter,
        Some(Expr::Or(vec![eq(p(&["name"]), s("x;y)")), qf("Ns.F", vec![("P", strs(&[";)"]))])]))
    );
    // $ref with options is parsed; the consumer decides
    assert!(x("a/$ref($filter=x eq 1)")[0].options.filter.is_some());
}

#[test]
fn expand_errors() {
    let e = xerr("primarycontactid()");
    assert_eq!(
        e.message,
        "Missing expand option on navigation property 'primarycontactid'. If a parenthesis expression follows an expanded navigation property, then at least one expand option must be provided."
    );
    for opt in ["$skip=1", "$count=true", "$levels=2", "$search=x"] {
        let e = xerr(&format!("Account_Tasks({opt})"));
        assert_eq!(e.kind, ErrorKind::Unsupported, "{opt}");
        assert!(e.message.contains("is not supported inside $expand"), "{}", e.message);
    }
    let e = xerr("a($filter=name eq @p1)");
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert_eq!(e.message, "Parameter alias '@p1' at position 8 in 'name eq @p1' is not supported inside $expand.");
    assert_eq!(xerr("a($foo=1)").message, "Term '$foo=1' is not valid in a $select or $expand expression.");
    assert_eq!(xerr("a($select)").message, "Term '$select' is not valid in a $select or $expand expression.");
    assert_eq!(xerr("a($select=b;)").message, "Term '' is not valid in a $select or $expand expression.");
    let e = xerr("a($select=b;$select=c)");
    assert_eq!(e.kind, ErrorKind::DuplicateOption);
    assert_eq!(
        e.message,
        "Query option '$select' was specified more than once, but it must be specified at most once."
    );
    assert_eq!(xerr("a($top=-1)").message, "Top option must be a non-negative integer, it is set to '-1' instead.");
    assert_eq!(xerr("a($select=b").message, "')' expected at position 11 in 'a($select=b'.");
    assert_eq!(xerr("a,,b").message, "Syntax error at position 2 in 'a,,b'.");
    assert_eq!(xerr("").message, "Syntax error at position 0 in ''.");
    assert_eq!(xerr("a,").message, "Syntax error at position 2 in 'a,'.");
    assert_eq!(xerr("a/b").message, "Syntax error at position 2 in 'a/b'.");
    assert_eq!(xerr("a b").message, "Syntax error at position 2 in 'a b'.");
    assert_eq!(xerr("*").kind, ErrorKind::InvalidCharacter);
    assert_eq!(xerr("a($select=b)x").message, "Syntax error at position 12 in 'a($select=b)x'.");
    // errors in a nested option are reported against that option's text (as ODataLib does)
    let e = xerr("Account_Tasks($filter=subject eq 'x)");
    assert_eq!(e.kind, ErrorKind::Syntax);
    let e = xerr("Account_Tasks($filter=subject eq)");
    assert_eq!(e.message, "Expression expected at position 10 in 'subject eq'.");
    assert_eq!(e.input, "subject eq");
    let e = xerr("a($filter=x eq 'abc)");
    assert!(e.message.starts_with("')' expected"), "{}", e.message);
    // deep nesting
    let deep = format!("{}b{}", "a($expand=".repeat(MAX_DEPTH + 5), ")".repeat(MAX_DEPTH + 5));
    assert_eq!(xerr(&deep).kind, ErrorKind::TooDeep);
    let ok = format!("{}b{}", "a($expand=".repeat(20), ")".repeat(20));
    assert_eq!(x(&ok).len(), 1);
}

// ------------------------------------------------------------------------------- $apply

fn ap(s: &str) -> Vec<Transformation> {
    parse_apply(s, &no()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn aerr(s: &str) -> String {
    parse_apply(s, &no()).unwrap_err().message
}

#[test]
fn reference_apply_examples() {
    assert_eq!(
        ap("groupby((statuscode))"),
        vec![Transformation::GroupBy { properties: vec![pp(&["statuscode"])], aggregate: None }]
    );
    assert_eq!(
        ap("groupby((statuscode),aggregate($count as count))"),
        vec![Transformation::GroupBy {
            properties: vec![pp(&["statuscode"])],
            aggregate: Some(vec![Aggregate::Count { alias: "count".into() }])
        }]
    );
    assert_eq!(
        ap("aggregate(revenue with sum as total)"),
        vec![Transformation::Aggregate(vec![Aggregate::Property {
            path: pp(&["revenue"]),
            method: AggregateMethod::Sum,
            alias: "total".into()
        }])]
    );
    assert_eq!(
        ap("groupby((statuscode),aggregate(revenue with average as averagevalue))"),
        vec![Transformation::GroupBy {
            properties: vec![pp(&["statuscode"])],
            aggregate: Some(vec![Aggregate::Property {
                path: pp(&["revenue"]),
                method: AggregateMethod::Average,
                alias: "averagevalue".into()
            }])
        }]
    );
    assert_eq!(
        ap("groupby((primarycontactid/fullname),aggregate(revenue with sum as total))"),
        vec![Transformation::GroupBy {
            properties: vec![pp(&["primarycontactid", "fullname"])],
            aggregate: Some(vec![Aggregate::Property {
                path: pp(&["revenue"]),
                method: AggregateMethod::Sum,
                alias: "total".into()
            }])
        }]
    );
    assert_eq!(
        ap("filter(address1_stateorprovince eq 'WA')/groupby((primarycontactid/fullname))"),
        vec![
            Transformation::Filter(eq(p(&["address1_stateorprovince"]), s("WA"))),
            Transformation::GroupBy { properties: vec![pp(&["primarycontactid", "fullname"])], aggregate: None }
        ]
    );
    assert_eq!(
        ap("aggregate(createdon with max as lastCreate)"),
        vec![Transformation::Aggregate(vec![Aggregate::Property {
            path: pp(&["createdon"]),
            method: AggregateMethod::Max,
            alias: "lastCreate".into()
        }])]
    );
}

#[test]
fn apply_variants() {
    let v = ap("aggregate(a with min as lo, a with max as hi, b with countdistinct as n, $count as c)");
    let Transformation::Aggregate(aggs) = &v[0] else { panic!() };
    assert_eq!(aggs.len(), 4);
    assert_eq!(aggs[0].alias(), "lo");
    assert_eq!(aggs[3].alias(), "c");
    assert!(matches!(aggs[2], Aggregate::Property { method: AggregateMethod::CountDistinct, .. }));
    assert_eq!(AggregateMethod::Average.as_str(), "average");
    let v = ap(" groupby ( ( a , b/c ) , aggregate ( x with sum as t ) ) ");
    let Transformation::GroupBy { properties, aggregate } = &v[0] else { panic!() };
    assert_eq!(properties, &vec![pp(&["a"]), pp(&["b", "c"])]);
    assert_eq!(aggregate.as_ref().map(Vec::len), Some(1));
    assert_eq!(ap(""), vec![]);
    assert_eq!(ap("filter(a eq 1)/filter(b eq 2)/aggregate($count as n)").len(), 3);
    // aliases work inside filter()
    assert_eq!(
        parse_apply("filter(a eq @v)", &Aliases::from_pairs([("@v", "3")])).unwrap(),
        vec![Transformation::Filter(eq(p(&["a"]), i(3)))]
    );
}

#[test]
fn apply_errors() {
    assert_eq!(aerr("groupby(statuscode)"), "'(' expected at position 8 in 'groupby(statuscode)'.");
    assert_eq!(aerr("groupby"), "'(' expected at position 7 in 'groupby'.");
    assert_eq!(aerr("groupby((statuscode)"), "')' or ',' expected at position 20 in 'groupby((statuscode)'.");
    assert_eq!(aerr("groupby((a b))"), "')' or operator expected at position 11 in 'groupby((a b))'.");
    assert_eq!(aerr("groupby((tolower(a)))"), "Expression expected at position 9 in 'groupby((tolower(a)))'.");
    assert_eq!(
        aerr("groupby((a),filter(b eq 1))"),
        "'aggregate' expected at position 12 in 'groupby((a),filter(b eq 1))'."
    );
    assert_eq!(
        aerr("aggregate(revenue sum as total)"),
        "'with' expected at position 18 in 'aggregate(revenue sum as total)'."
    );
    assert_eq!(
        aerr("aggregate(revenue with median as m)"),
        "Unrecognized with 'median' at '23' in 'aggregate(revenue with median as m)'."
    );
    assert_eq!(
        aerr("aggregate(revenue with sum total)"),
        "'as' expected at position 27 in 'aggregate(revenue with sum total)'."
    );
    assert_eq!(aerr("aggregate($count count)"), "'as' expected at position 17 in 'aggregate($count count)'.");
    assert_eq!(
        aerr("aggregate(revenue with sum as)"),
        "Syntax error at position 30 in 'aggregate(revenue with sum as)'."
    );
    assert_eq!(
        aerr("aggregate(revenue with sum as t"),
        "')' or ',' expected at position 31 in 'aggregate(revenue with sum as t'."
    );
    assert_eq!(aerr("compute(a as b)"), "'aggregate|filter|groupby' expected at position 0 in 'compute(a as b)'.");
    assert_eq!(aerr("filter(a eq 1)/"), "'aggregate|filter|groupby' expected at position 15 in 'filter(a eq 1)/'.");
    assert_eq!(aerr("filter(a eq 1"), "')' or operator expected at position 13 in 'filter(a eq 1'.");
    assert_eq!(aerr("filter a"), "'(' expected at position 7 in 'filter a'.");
    assert_eq!(aerr("filter(a eq 1) x"), "Syntax error at position 16 in 'filter(a eq 1) x'.");
    let e = parse_apply("aggregate(a add 1 with sum as t)", &no()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
}

// ------------------------------------------------------------------------------- QueryOptions

#[test]
fn query_options() {
    let q = QueryOptions::parse([
        ("$select", "name,revenue"),
        ("$filter", "@p1 ne null"),
        ("$orderby", "@p1 desc"),
        ("$top", "10"),
        ("$count", "true"),
        ("$expand", "primarycontactid($select=fullname)"),
        ("@p1", "revenue"),
        ("$skiptoken", "<cookie/>"),
        ("custom", "1"),
    ])
    .unwrap();
    assert_eq!(q.select, sel(&["name", "revenue"]));
    assert_eq!(q.filter, Some(cmp(CompareOp::Ne, p(&["revenue"]), null())));
    assert_eq!(q.orderby.as_ref().unwrap()[0].direction, Direction::Desc);
    assert_eq!(q.top, Some(10));
    assert_eq!(q.count, Some(true));
    assert_eq!(q.expand.as_ref().unwrap()[0].navigation, "primarycontactid");
    assert_eq!(q.apply, None);
    assert_eq!(q.aliases.get("@p1"), Some("revenue"));
    assert_eq!(
        q.other,
        vec![("$skiptoken".to_string(), "<cookie/>".to_string()), ("custom".to_string(), "1".to_string())]
    );
    let e = QueryOptions::parse([("$filter", "a eq 1"), ("$filter", "b eq 2")]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DuplicateOption);
    assert_eq!(
        e.message,
        "Query option '$filter' was specified more than once, but it must be specified at most once."
    );
    let q = QueryOptions::parse(vec![("$apply".to_string(), "groupby((a))".to_string())]).unwrap();
    assert_eq!(q.apply.map(|v| v.len()), Some(1));
    assert!(QueryOptions::parse([("$top", "x")]).is_err());
    // upper-case names are not system options
    let q = QueryOptions::parse([("$FILTER", "garbage((")]).unwrap();
    assert_eq!(q.filter, None);
    assert_eq!(q.other.len(), 1);
}

#[test]
fn worst_case_nesting_fits_a_2mb_stack() {
    // Runs on a 2 MiB thread, like a tokio worker: the deepest accepted $expand holding the
    // deepest accepted $filter, and the deepest accepted alias chain.
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let n = MAX_DEPTH - 2;
            let filter = format!("{}a eq 1{}", "(".repeat(n), ")".repeat(n));
            let expand = format!("{}b($filter={filter}){}", "a($expand=".repeat(n), ")".repeat(n));
            assert!(parse_expand(&expand).is_ok());
            let k = n / 2 - 1;
            let lambdas =
                format!("{}x0 eq 1{}", (0..k).map(|j| format!("a/any(x{j}:")).collect::<String>(), ")".repeat(k));
            assert!(parse_filter(&lambdas, &Aliases::new()).is_ok());
            let mut pairs: Vec<(String, String)> =
                (0..n - 2).map(|k| (format!("@p{k}"), format!("(@p{})", k + 1))).collect();
            pairs.push((format!("@p{}", n - 2), "1".into()));
            let aliases = Aliases::from_pairs(pairs);
            let r = parse_filter("x eq @p0", &aliases);
            assert!(r.is_ok() || matches!(&r, Err(e) if e.kind == ErrorKind::TooDeep), "{r:?}");
            let nots = format!("{}a", "not ".repeat(n));
            assert!(parse_filter(&nots, &Aliases::new()).is_ok());
            let chain = format!("a{}", " add 1".repeat(n - 1));
            assert!(parse_filter(&chain, &Aliases::new()).is_ok());
        })
        .unwrap()
        .join()
        .unwrap();
}
