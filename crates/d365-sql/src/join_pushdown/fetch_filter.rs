//! A scan's `$filter` → a FetchXML `<filter>`, so the filters SQL pushed to each side of a join
//! go into the FetchXML of the join.
//!
//! The input is what [`crate::filter_pushdown`] wrote (so its exactness carries over
//! unchanged): `and`/`or`, comparisons of a property with a literal (`eq null`/`ne null` become
//! `null`/`not-null`), `startswith`/`endswith`/`contains` (→ `like` with `%`: the translator
//! never sends a pattern holding `%`, `_` or `[`), and the `In` and `Between` query functions.
//! Anything else gives `None`, and the join is not pushed.

use d365_odata::{Aliases, CompareOp, Expr, Literal, parse_filter};

/// The FetchXML attribute of a Web API property: a lookup's `_x_value` is attribute `x`.
pub fn attribute_of(property: &str) -> &str {
    property.strip_prefix('_').and_then(|p| p.strip_suffix("_value")).unwrap_or(property)
}

/// Escapes text for an XML attribute value or element content.
pub fn xml_escape(text: &str) -> String {
    d365_odata::fetchxml::xml_escape(text).into_owned()
}

/// The `<filter>` element equivalent to the OData filter `odata`, or `None` when some part of
/// it has no FetchXML form here.
pub fn fetch_filter(odata: &str) -> Option<String> {
    let expr = parse_filter(odata, &Aliases::new()).ok()?;
    let mut out = String::new();
    match expr {
        Expr::And(_) | Expr::Or(_) => item(&expr, &mut out)?,
        other => {
            out.push_str("<filter type=\"and\">");
            item(&other, &mut out)?;
            out.push_str("</filter>");
        }
    }
    Some(out)
}

fn item(expr: &Expr, out: &mut String) -> Option<()> {
    match expr {
        Expr::And(items) | Expr::Or(items) => {
            let kind = if matches!(expr, Expr::And(_)) { "and" } else { "or" };
            out.push_str(&format!("<filter type=\"{kind}\">"));
            for i in items {
                item(i, out)?;
            }
            out.push_str("</filter>");
        }
        Expr::Compare { op, left, right } => {
            let attribute = attribute_of(left.as_path()?.single()?);
            let Expr::Literal(lit) = right.as_ref() else { return None };
            if *lit == Literal::Null {
                let operator = match op {
                    CompareOp::Eq => "null",
                    CompareOp::Ne => "not-null",
                    _ => return None,
                };
                condition(out, attribute, operator, &[]);
            } else {
                // FetchXML names the comparisons as OData does.
                condition(out, attribute, op.as_str(), &[value(lit)?]);
            }
        }
        Expr::Call { name, args } => {
            let [Expr::Path(path), Expr::Literal(Literal::String(text))] = args.as_slice() else { return None };
            let pattern = match name.as_str() {
                "startswith" => format!("{text}%"),
                "endswith" => format!("%{text}"),
                "contains" => format!("%{text}%"),
                _ => return None,
            };
            if text.contains(['%', '_', '[']) {
                return None;
            }
            condition(out, attribute_of(path.single()?), "like", &[pattern]);
        }
        Expr::QueryFunction(f) if f.namespace() == "Microsoft.Dynamics.CRM" => {
            let operator = match f.short_name() {
                "In" => "in",
                "Between" => "between",
                _ => return None,
            };
            let Some(Expr::Literal(Literal::String(property))) = f.param("PropertyName") else { return None };
            let Some(Expr::Array(values)) = f.param("PropertyValues") else { return None };
            let values: Vec<String> = values.iter().map(value).collect::<Option<_>>()?;
            if values.is_empty() || (operator == "between" && values.len() != 2) {
                return None;
            }
            condition(out, attribute_of(property), operator, &values);
        }
        _ => return None,
    }
    Some(())
}

/// The FetchXML text of a literal.
fn value(lit: &Literal) -> Option<String> {
    Some(match lit {
        Literal::String(s) => s.clone(),
        Literal::Int(i) => i.to_string(),
        Literal::Number { text, .. } => text.trim_end_matches(['m', 'M', 'd', 'D']).to_string(),
        Literal::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Literal::Guid(g) => g.clone(),
        Literal::Date(d) => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
        Literal::DateTimeOffset(t) => t.text.clone(),
        _ => return None,
    })
}

fn condition(out: &mut String, attribute: &str, operator: &str, values: &[String]) {
    let attribute = xml_escape(attribute);
    match values {
        [] => out.push_str(&format!("<condition attribute=\"{attribute}\" operator=\"{operator}\"/>")),
        [one] if operator != "in" && operator != "between" => out.push_str(&format!(
            "<condition attribute=\"{attribute}\" operator=\"{operator}\" value=\"{}\"/>",
            xml_escape(one)
        )),
        many => {
            out.push_str(&format!("<condition attribute=\"{attribute}\" operator=\"{operator}\">"));
            for v in many {
                out.push_str(&format!("<value>{}</value>", xml_escape(v)));
            }
            out.push_str("</condition>");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_filters_become_fetchxml_conditions() {
        assert_eq!(
            fetch_filter("statecode eq 0").unwrap(),
            "<filter type=\"and\"><condition attribute=\"statecode\" operator=\"eq\" value=\"0\"/></filter>"
        );
        assert_eq!(
            fetch_filter("(startswith(name,'O''Brien & <Co>') and _parentaccountid_value ne null)").unwrap(),
            "<filter type=\"and\"><condition attribute=\"name\" operator=\"like\" value=\"O&apos;Brien &amp; &lt;Co&gt;%\"/>\
             <condition attribute=\"parentaccountid\" operator=\"not-null\"/></filter>"
        );
        assert_eq!(
            fetch_filter("(revenue gt 1000.5 or createdon lt 2024-01-01T00:00:00Z or donotemail eq true)").unwrap(),
            "<filter type=\"or\"><condition attribute=\"revenue\" operator=\"gt\" value=\"1000.5\"/>\
             <condition attribute=\"createdon\" operator=\"lt\" value=\"2024-01-01T00:00:00Z\"/>\
             <condition attribute=\"donotemail\" operator=\"eq\" value=\"1\"/></filter>"
        );
        assert_eq!(
            fetch_filter("Microsoft.Dynamics.CRM.In(PropertyName='accountnumber',PropertyValues=['A1','A2'])").unwrap(),
            "<filter type=\"and\"><condition attribute=\"accountnumber\" operator=\"in\">\
             <value>A1</value><value>A2</value></condition></filter>"
        );
        assert_eq!(
            fetch_filter("Microsoft.Dynamics.CRM.Between(PropertyName='numberofemployees',PropertyValues=['1','9'])")
                .unwrap(),
            "<filter type=\"and\"><condition attribute=\"numberofemployees\" operator=\"between\">\
             <value>1</value><value>9</value></condition></filter>"
        );
        assert_eq!(
            fetch_filter("contains(name,'x') and endswith(name,'y')").unwrap(),
            "<filter type=\"and\"><condition attribute=\"name\" operator=\"like\" value=\"%x%\"/>\
             <condition attribute=\"name\" operator=\"like\" value=\"%y\"/></filter>"
        );
    }

    #[test]
    fn forms_without_a_fetchxml_equivalent_are_refused() {
        for odata in [
            "not (statecode eq 0)",
            "tolower(name) eq 'a'",
            "statecode gt null",
            "startswith(name,'50%')",
            "Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=3)",
            "name eq",
        ] {
            assert_eq!(fetch_filter(odata), None, "{odata}");
        }
    }
}
