//! `GET /data/$metadata`: CSDL (OData v4 XML) of the namespace
//! `Microsoft.Dynamics.DataEntities`: an EntityType per data entity (keys, properties, navigation
//! properties with referential constraints), an EnumType per enum, and the EntityContainer with
//! one EntitySet per entity and its navigation bindings. Properties are non-nullable, as F&O
//! publishes them; dates are `Edm.DateTimeOffset`, reals `Edm.Decimal`.

use super::model::{DataType, ENTITIES, ENUMS, NAMESPACE, entity};
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The CSDL document.
pub fn csdl() -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><edmx:Edmx Version=\"4.0\" \
         xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices>",
    );
    let _ = write!(x, "<Schema Namespace=\"{NAMESPACE}\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">");
    for e in ENTITIES {
        let _ = write!(x, "<EntityType Name=\"{}\"><Key>", e.name);
        for k in e.keys {
            let _ = write!(x, "<PropertyRef Name=\"{k}\" />");
        }
        x.push_str("</Key>");
        for f in e.fields {
            let extra = match f.data_type {
                DataType::Real => " Precision=\"32\" Scale=\"6\"",
                _ => "",
            };
            let _ =
                write!(x, "<Property Name=\"{}\" Type=\"{}\" Nullable=\"false\"{extra} />", f.name, f.data_type.edm());
        }
        for n in e.navigations {
            let ty = format!("{NAMESPACE}.{}", n.target);
            let ty = if n.many { format!("Collection({ty})") } else { ty };
            let partner = entity(n.target)
                .and_then(|t| t.navigations.iter().find(|b| b.relation == n.relation))
                .map(|b| format!(" Partner=\"{}\"", b.name))
                .unwrap_or_default();
            let _ = write!(x, "<NavigationProperty Name=\"{}\" Type=\"{ty}\"{partner}>", n.name);
            for (a, b) in n.constraints {
                let _ = write!(x, "<ReferentialConstraint Property=\"{a}\" ReferencedProperty=\"{b}\" />");
            }
            x.push_str("</NavigationProperty>");
        }
        x.push_str("</EntityType>");
    }
    for en in ENUMS {
        let _ = write!(x, "<EnumType Name=\"{}\">", en.name);
        for (m, v) in en.members {
            let _ = write!(x, "<Member Name=\"{m}\" Value=\"{v}\" />");
        }
        x.push_str("</EnumType>");
    }
    x.push_str("<EntityContainer Name=\"Resources\">");
    for e in ENTITIES {
        let _ = write!(x, "<EntitySet Name=\"{}\" EntityType=\"{NAMESPACE}.{}\">", e.collection, e.name);
        for n in e.navigations {
            if let Some(t) = entity(n.target) {
                let _ = write!(x, "<NavigationPropertyBinding Path=\"{}\" Target=\"{}\" />", n.name, t.collection);
            }
        }
        let _ =
            write!(x, "<Annotation Term=\"Org.OData.Core.V1.Description\" String=\"{}\" /></EntitySet>", esc(e.label));
    }
    x.push_str("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    x
}

#[cfg(test)]
mod tests {
    #[test]
    fn has_enums_sets_and_keys() {
        let x = super::csdl();
        assert!(x.contains(
            "<EnumType Name=\"NoYes\"><Member Name=\"No\" Value=\"0\" /><Member Name=\"Yes\" Value=\"1\" />"
        ));
        assert!(
            x.contains("<EntitySet Name=\"CustomersV3\" EntityType=\"Microsoft.Dynamics.DataEntities.CustomerV3\">")
        );
        assert!(x.contains("<PropertyRef Name=\"dataAreaId\" /><PropertyRef Name=\"CustomerAccount\" />"));
        assert!(x.contains("<NavigationPropertyBinding Path=\"SalesOrderLines\" Target=\"SalesOrderLines\" />"));
    }
}
