//! `GET [API]/$metadata`: the EDMX/CSDL document describing the emulated tables, the metadata
//! types behind `EntityDefinitions`, `RelationshipDefinitions` and `GlobalOptionSetDefinitions`,
//! and the `WhoAmI` function.
//!
//! Shape follows the service: namespace `Microsoft.Dynamics.CRM` (alias `mscrm`); every table's
//! type derives from the abstract `crmbaseentity`, except `systemuser` and `team`, which derive
//! from the abstract `principal` (key `ownerid`) and so declare no key of their own; lookups
//! appear as a read-only `_x_value` Edm.Guid property plus one single-valued navigation
//! property per target (with a referential constraint), and the target gets the partner
//! collection-valued navigation property; entity sets of change-tracked tables carry the
//! `Capabilities.ChangeTracking` annotation; alternate keys are announced with
//! `OData.Community.Keys.V1.AlternateKeys`. Choice options are not in `$metadata` (they are
//! read from `EntityDefinitions`), as on the service.

use super::metadata::types::{self, ENUMS, TYPES};
use crate::schema::{AttrKind, Column, Relationship, Schema, Table};
use std::borrow::Cow;
use std::fmt::Write;

const CORE_VOCABULARY: &str = "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml";
const CAPABILITIES_VOCABULARY: &str =
    "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Capabilities.V1.xml";
const KEYS_VOCABULARY: &str = "http://vocabularies.odata.org/OData.Community.Keys.V1.xml";

/// Escapes a value for use inside a double-quoted XML attribute (or text).
pub fn escape(s: &str) -> Cow<'_, str> {
    d365_odata::fetchxml::xml_escape(s)
}

/// Tables whose entity type derives from `principal` (they can own records).
fn is_principal(t: &Table) -> bool {
    matches!(t.logical_name.as_str(), "systemuser" | "team")
}

/// The EDM facets written after the type of a column's property.
fn facets(c: &Column) -> &'static str {
    match c.kind {
        AttrKind::String | AttrKind::Memo | AttrKind::MultiSelectPicklist => " Unicode=\"false\"",
        AttrKind::Decimal | AttrKind::Money => " Scale=\"Variable\"",
        _ => "",
    }
}

/// The target type of a single-valued navigation property. The owner lookup's own navigation
/// property (`ownerid`) points at `principal`, since the owner is a user or a team.
fn nav_target_type(schema: &Schema, r: &Relationship) -> (String, String) {
    let owner_nav = schema
        .table(&r.referencing_entity)
        .and_then(|t| t.column(&r.referencing_attribute))
        .is_some_and(|c| c.kind == AttrKind::Owner && r.referencing_nav == c.logical_name);
    if owner_nav {
        ("mscrm.principal".into(), "ownerid".into())
    } else {
        (format!("mscrm.{}", r.referenced_entity), r.referenced_attribute.clone())
    }
}

fn annotation_bool(out: &mut String, indent: &str, term: &str) {
    let _ = writeln!(out, "{indent}<Annotation Term=\"{term}\" Bool=\"true\"/>");
}

fn read_only_annotations(out: &mut String, indent: &str) {
    annotation_bool(out, indent, "Org.OData.Core.V1.Computed");
    let _ = writeln!(out, "{indent}<Annotation Term=\"Org.OData.Core.V1.Permissions\">");
    let _ =
        writeln!(out, "{indent}  <Collection><EnumMember>Org.OData.Core.V1.Permission/Read</EnumMember></Collection>");
    let _ = writeln!(out, "{indent}</Annotation>");
}

fn write_property(out: &mut String, c: &Column, annotations: bool) {
    let name = escape(&c.property_name()).into_owned();
    let ty = c.kind.edm_type();
    let key_nullable = if c.is_primary_id { " Nullable=\"false\"" } else { "" };
    let read_only = c.kind.is_lookup() || (!c.valid_for_create && !c.valid_for_update);
    let create_only = !read_only && c.valid_for_create && !c.valid_for_update && !c.is_primary_id;
    let annotated = annotations && (read_only || create_only || !c.display_name.is_empty());
    let head = format!("        <Property Name=\"{name}\" Type=\"{ty}\"{}{key_nullable}", facets(c));
    if !annotated {
        let _ = writeln!(out, "{head}/>");
        return;
    }
    let _ = writeln!(out, "{head}>");
    let indent = "          ";
    if !c.display_name.is_empty() {
        let _ = writeln!(
            out,
            "{indent}<Annotation Term=\"Org.OData.Core.V1.Description\" String=\"{}\"/>",
            escape(&c.display_name)
        );
    }
    if read_only {
        read_only_annotations(out, indent);
    } else if create_only {
        annotation_bool(out, indent, "Org.OData.Core.V1.Immutable");
    }
    let _ = writeln!(out, "        </Property>");
}

fn write_alternate_keys(out: &mut String, t: &Table) {
    if t.keys.is_empty() {
        return;
    }
    out.push_str("        <Annotation Term=\"OData.Community.Keys.V1.AlternateKeys\">\n          <Collection>\n");
    for k in &t.keys {
        out.push_str("            <Record Type=\"OData.Community.Keys.V1.AlternateKey\">\n");
        out.push_str("              <PropertyValue Property=\"Key\">\n                <Collection>\n");
        for a in &k.attributes {
            let prop = t.column(a).map_or_else(|| a.clone(), |c| c.property_name());
            let prop = escape(&prop);
            let _ = writeln!(
                out,
                "                  <Record Type=\"OData.Community.Keys.V1.PropertyRef\">\
                 <PropertyValue Property=\"Alias\" String=\"{prop}\"/>\
                 <PropertyValue Property=\"Name\" PropertyPath=\"{prop}\"/></Record>"
            );
        }
        out.push_str("                </Collection>\n              </PropertyValue>\n            </Record>\n");
    }
    out.push_str("          </Collection>\n        </Annotation>\n");
}

fn write_table_type(out: &mut String, schema: &Schema, t: &Table, annotations: bool) {
    let base = if is_principal(t) { "mscrm.principal" } else { "mscrm.crmbaseentity" };
    let _ = writeln!(out, "      <EntityType Name=\"{}\" BaseType=\"{base}\">", escape(&t.logical_name));
    if !is_principal(t) {
        let _ = writeln!(out, "        <Key><PropertyRef Name=\"{}\"/></Key>", escape(&t.primary_id));
    }
    for c in &t.columns {
        write_property(out, c, annotations);
    }
    for r in schema.many_to_one(&t.logical_name) {
        let (ty, referenced_property) = nav_target_type(schema, r);
        let lookup_property = format!("_{}_value", r.referencing_attribute);
        let _ = writeln!(
            out,
            "        <NavigationProperty Name=\"{}\" Type=\"{ty}\" Partner=\"{}\">\n          \
             <ReferentialConstraint Property=\"{}\" ReferencedProperty=\"{}\"/>\n        </NavigationProperty>",
            escape(&r.referencing_nav),
            escape(&r.referenced_nav),
            escape(&lookup_property),
            escape(&referenced_property),
        );
    }
    for r in schema.one_to_many(&t.logical_name) {
        let _ = writeln!(
            out,
            "        <NavigationProperty Name=\"{}\" Type=\"Collection(mscrm.{})\" Partner=\"{}\"/>",
            escape(&r.referenced_nav),
            escape(&r.referencing_entity),
            escape(&r.referencing_nav),
        );
    }
    if annotations && !t.description.is_empty() {
        let _ = writeln!(
            out,
            "        <Annotation Term=\"Org.OData.Core.V1.Description\" String=\"{}\"/>",
            escape(&t.description)
        );
    }
    write_alternate_keys(out, t);
    out.push_str("      </EntityType>\n");
}

fn write_metadata_types(out: &mut String) {
    for t in TYPES {
        let kind = if t.is_complex { "ComplexType" } else { "EntityType" };
        let mut head = format!("      <{kind} Name=\"{}\"", t.name);
        if let Some(b) = t.base {
            let _ = write!(head, " BaseType=\"mscrm.{b}\"");
        }
        if t.is_abstract {
            head.push_str(" Abstract=\"true\"");
        }
        let _ = writeln!(out, "{head}>");
        if t.name == "MetadataBase" {
            out.push_str("        <Key><PropertyRef Name=\"MetadataId\"/></Key>\n");
        }
        for (name, ty) in t.props {
            let nullable = if t.name == "MetadataBase" && *name == "MetadataId" { " Nullable=\"false\"" } else { "" };
            let _ = writeln!(out, "        <Property Name=\"{name}\" Type=\"{ty}\"{nullable}/>");
        }
        for (name, ty) in t.navs {
            let _ = writeln!(out, "        <NavigationProperty Name=\"{name}\" Type=\"{ty}\"/>");
        }
        let _ = writeln!(out, "      </{kind}>");
    }
    for e in ENUMS {
        let flags = if e.flags { " IsFlags=\"true\"" } else { "" };
        let _ = writeln!(out, "      <EnumType Name=\"{}\" UnderlyingType=\"Edm.Int32\"{flags}>", e.name);
        for (m, v) in e.members {
            let _ = writeln!(out, "        <Member Name=\"{m}\" Value=\"{v}\"/>");
        }
        out.push_str("      </EnumType>\n");
    }
}

fn write_container(out: &mut String, schema: &Schema) {
    out.push_str("      <EntityContainer Name=\"System\">\n");
    for t in &schema.tables {
        let _ = writeln!(
            out,
            "        <EntitySet Name=\"{}\" EntityType=\"Microsoft.Dynamics.CRM.{}\">",
            escape(&t.set_name),
            escape(&t.logical_name)
        );
        for r in schema.many_to_one(&t.logical_name) {
            let (ty, _) = nav_target_type(schema, r);
            if ty == "mscrm.principal" {
                continue; // a user or a team: no single target set
            }
            if let Some(target) = schema.table(&r.referenced_entity) {
                let _ = writeln!(
                    out,
                    "          <NavigationPropertyBinding Path=\"{}\" Target=\"{}\"/>",
                    escape(&r.referencing_nav),
                    escape(&target.set_name)
                );
            }
        }
        for r in schema.one_to_many(&t.logical_name) {
            if let Some(target) = schema.table(&r.referencing_entity) {
                let _ = writeln!(
                    out,
                    "          <NavigationPropertyBinding Path=\"{}\" Target=\"{}\"/>",
                    escape(&r.referenced_nav),
                    escape(&target.set_name)
                );
            }
        }
        if t.change_tracking {
            out.push_str(
                "          <Annotation Term=\"Org.OData.Capabilities.V1.ChangeTracking\">\
                 <Record><PropertyValue Property=\"Supported\" Bool=\"true\"/></Record></Annotation>\n",
            );
        }
        out.push_str("        </EntitySet>\n");
    }
    out.push_str(
        "        <EntitySet Name=\"EntityDefinitions\" EntityType=\"Microsoft.Dynamics.CRM.EntityMetadata\"/>\n\
         \x20       <EntitySet Name=\"RelationshipDefinitions\" \
         EntityType=\"Microsoft.Dynamics.CRM.RelationshipMetadataBase\"/>\n\
         \x20       <EntitySet Name=\"GlobalOptionSetDefinitions\" \
         EntityType=\"Microsoft.Dynamics.CRM.OptionSetMetadataBase\"/>\n\
         \x20       <FunctionImport Name=\"WhoAmI\" Function=\"Microsoft.Dynamics.CRM.WhoAmI\"/>\n\
         \x20       <FunctionImport Name=\"RetrieveTotalRecordCount\" \
         Function=\"Microsoft.Dynamics.CRM.RetrieveTotalRecordCount\"/>\n",
    );
    out.push_str("      </EntityContainer>\n");
}

/// The `$metadata` document. `annotations` (`?annotations=true`) adds property descriptions and
/// the `Core.Computed`/`Core.Permissions`/`Core.Immutable` annotations of read-only and
/// create-only properties.
pub fn csdl(schema: &Schema, annotations: bool) -> String {
    let mut out = String::with_capacity(256 * 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n");
    for (uri, ns, alias) in [
        (KEYS_VOCABULARY, "OData.Community.Keys.V1", "Keys"),
        (CORE_VOCABULARY, "Org.OData.Core.V1", "Core"),
        (CAPABILITIES_VOCABULARY, "Org.OData.Capabilities.V1", "Capabilities"),
    ] {
        let _ = writeln!(
            out,
            "  <edmx:Reference Uri=\"{uri}\">\n    <edmx:Include Namespace=\"{ns}\" Alias=\"{alias}\"/>\n  </edmx:Reference>"
        );
    }
    out.push_str("  <edmx:DataServices>\n");
    out.push_str(
        "    <Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\" \
         xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n",
    );
    out.push_str("      <EntityType Name=\"crmbaseentity\" Abstract=\"true\"/>\n");
    out.push_str(
        "      <EntityType Name=\"principal\" BaseType=\"mscrm.crmbaseentity\" Abstract=\"true\">\n        \
         <Key><PropertyRef Name=\"ownerid\"/></Key>\n        \
         <Property Name=\"ownerid\" Type=\"Edm.Guid\" Nullable=\"false\"/>\n      </EntityType>\n",
    );
    for t in &schema.tables {
        write_table_type(&mut out, schema, t, annotations);
    }
    write_metadata_types(&mut out);
    out.push_str(
        "      <Function Name=\"WhoAmI\">\n        \
         <ReturnType Type=\"mscrm.WhoAmIResponse\" Nullable=\"false\"/>\n      </Function>\n\
         \x20     <Function Name=\"RetrieveTotalRecordCount\">\n        \
         <Parameter Name=\"EntityNames\" Type=\"Collection(Edm.String)\" Nullable=\"false\" Unicode=\"false\"/>\n        \
         <ReturnType Type=\"mscrm.RetrieveTotalRecordCountResponse\" Nullable=\"false\"/>\n      </Function>\n",
    );
    write_container(&mut out, schema);
    out.push_str("    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n");
    debug_assert!(types::meta_type("WhoAmIResponse").is_some());
    debug_assert!(types::meta_type("RetrieveTotalRecordCountResponse").is_some());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small XML well-formedness checker: balanced and properly nested elements, quoted
    /// attributes without raw `<` or `&`, valid entity references, one root element.
    fn check_well_formed(xml: &str) -> Result<usize, String> {
        fn check_entities(text: &str, at: usize) -> Result<(), String> {
            let mut rest = text;
            while let Some(i) = rest.find('&') {
                let tail = &rest[i + 1..];
                let end = tail.find(';').ok_or(format!("unterminated entity near byte {at}"))?;
                let name = &tail[..end];
                let ok =
                    matches!(name, "amp" | "lt" | "gt" | "quot" | "apos") || (name.starts_with('#') && name.len() > 1);
                if !ok {
                    return Err(format!("bad entity &{name}; near byte {at}"));
                }
                rest = &tail[end + 1..];
            }
            Ok(())
        }
        let mut stack: Vec<String> = Vec::new();
        let mut elements = 0;
        let mut roots = 0;
        let mut i = 0;
        let b = xml.as_bytes();
        while i < b.len() {
            if b[i] != b'<' {
                let next = xml[i..].find('<').map_or(xml.len(), |n| i + n);
                let text = &xml[i..next];
                if stack.is_empty() && !text.trim().is_empty() {
                    return Err(format!("text outside the root at byte {i}"));
                }
                if text.contains('>') {
                    return Err(format!("raw '>' in text at byte {i}"));
                }
                check_entities(text, i)?;
                i = next;
                continue;
            }
            let end = xml[i..].find('>').map(|n| i + n).ok_or(format!("unterminated tag at byte {i}"))?;
            let tag = &xml[i + 1..end];
            if let Some(decl) = tag.strip_prefix('?') {
                if !decl.ends_with('?') {
                    return Err("bad declaration".into());
                }
            } else if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("closing </{name}> without opening at byte {i}"))?;
                if open != name.trim() {
                    return Err(format!("</{name}> closes <{open}> at byte {i}"));
                }
            } else {
                let self_closing = tag.ends_with('/');
                let body = tag.trim_end_matches('/');
                let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
                let name = &body[..name_end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || ":_.-".contains(c)) {
                    return Err(format!("bad element name {name:?} at byte {i}"));
                }
                // Attributes: name="value" pairs.
                let mut attrs = body[name_end..].trim();
                let mut seen = Vec::new();
                while !attrs.is_empty() {
                    let eq = attrs.find('=').ok_or(format!("attribute without value in <{name}> at {i}"))?;
                    let attr = attrs[..eq].trim();
                    if seen.contains(&attr) {
                        return Err(format!("duplicate attribute {attr} in <{name}> at {i}"));
                    }
                    seen.push(attr);
                    let rest = &attrs[eq + 1..];
                    if !rest.starts_with('"') {
                        return Err(format!("unquoted attribute {attr} in <{name}> at {i}"));
                    }
                    let close = rest[1..].find('"').ok_or(format!("unterminated attribute in <{name}>"))? + 1;
                    let value = &rest[1..close];
                    if value.contains('<') {
                        return Err(format!("'<' in attribute {attr} at {i}"));
                    }
                    check_entities(value, i)?;
                    attrs = rest[close + 1..].trim_start();
                }
                if stack.is_empty() {
                    roots += 1;
                }
                elements += 1;
                if !self_closing {
                    stack.push(name.to_string());
                }
            }
            i = end + 1;
        }
        if let Some(open) = stack.pop() {
            return Err(format!("<{open}> never closed"));
        }
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(elements)
    }

    #[test]
    fn checker_rejects_malformed_xml() {
        assert!(check_well_formed("<a><b></a></b>").is_err());
        assert!(check_well_formed("<a x=\"1&2\"/>").is_err());
        assert!(check_well_formed("<a x=1/>").is_err());
        assert!(check_well_formed("<a/><b/>").is_err());
        assert!(check_well_formed("<a>").is_err());
        assert_eq!(check_well_formed("<?xml version=\"1.0\"?><a x=\"&amp;\"><b/></a>"), Ok(2));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a&b<\"c\">'"), "a&amp;b&lt;&quot;c&quot;&gt;&apos;");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn document_is_well_formed_with_and_without_annotations() {
        let s = Schema::builtin();
        for annotations in [false, true] {
            let doc = csdl(&s, annotations);
            let n = check_well_formed(&doc).unwrap_or_else(|e| panic!("annotations={annotations}: {e}"));
            assert!(n > 500, "{n} elements");
        }
    }

    #[test]
    fn document_has_the_known_elements() {
        let s = Schema::builtin();
        let doc = csdl(&s, false);
        for needle in [
            "<Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\"",
            "<EntityType Name=\"crmbaseentity\" Abstract=\"true\"/>",
            "<EntityType Name=\"principal\" BaseType=\"mscrm.crmbaseentity\" Abstract=\"true\">",
            "<EntityType Name=\"account\" BaseType=\"mscrm.crmbaseentity\">",
            "<Key><PropertyRef Name=\"accountid\"/></Key>",
            "<Property Name=\"accountid\" Type=\"Edm.Guid\" Nullable=\"false\"/>",
            "<Property Name=\"name\" Type=\"Edm.String\" Unicode=\"false\"/>",
            "<Property Name=\"revenue\" Type=\"Edm.Decimal\" Scale=\"Variable\"/>",
            "<Property Name=\"_primarycontactid_value\" Type=\"Edm.Guid\"/>",
            "<NavigationProperty Name=\"primarycontactid\" Type=\"mscrm.contact\" Partner=\"account_primary_contact\">",
            "<ReferentialConstraint Property=\"_primarycontactid_value\" ReferencedProperty=\"contactid\"/>",
            "<NavigationProperty Name=\"contact_customer_accounts\" Type=\"Collection(mscrm.contact)\" \
             Partner=\"parentcustomerid_account\"/>",
            "<NavigationProperty Name=\"parentcustomerid_account\" Type=\"mscrm.account\" \
             Partner=\"contact_customer_accounts\">",
            "<NavigationProperty Name=\"ownerid\" Type=\"mscrm.principal\" Partner=\"owner_accounts\">",
            "<ReferentialConstraint Property=\"_ownerid_value\" ReferencedProperty=\"ownerid\"/>",
            "<EntityType Name=\"systemuser\" BaseType=\"mscrm.principal\">",
            "<Property Name=\"new_tags\" Type=\"Edm.String\" Unicode=\"false\"/>",
            "<Property Name=\"birthdate\" Type=\"Edm.Date\"/>",
            "<EntityContainer Name=\"System\">",
            "<EntitySet Name=\"accounts\" EntityType=\"Microsoft.Dynamics.CRM.account\">",
            "<NavigationPropertyBinding Path=\"primarycontactid\" Target=\"contacts\"/>",
            "<Annotation Term=\"Org.OData.Capabilities.V1.ChangeTracking\"><Record>\
             <PropertyValue Property=\"Supported\" Bool=\"true\"/></Record></Annotation>",
            "<EntitySet Name=\"EntityDefinitions\" EntityType=\"Microsoft.Dynamics.CRM.EntityMetadata\"/>",
            "<EntitySet Name=\"RelationshipDefinitions\" EntityType=\"Microsoft.Dynamics.CRM.RelationshipMetadataBase\"/>",
            "<EntitySet Name=\"GlobalOptionSetDefinitions\" EntityType=\"Microsoft.Dynamics.CRM.OptionSetMetadataBase\"/>",
            "<FunctionImport Name=\"WhoAmI\" Function=\"Microsoft.Dynamics.CRM.WhoAmI\"/>",
            "<Function Name=\"WhoAmI\">",
            "<ComplexType Name=\"WhoAmIResponse\">",
            "<Property Name=\"UserId\" Type=\"Edm.Guid\"/>",
            "<EntityType Name=\"PicklistAttributeMetadata\" BaseType=\"mscrm.EnumAttributeMetadata\">",
            "<NavigationProperty Name=\"Attributes\" Type=\"Collection(mscrm.AttributeMetadata)\"/>",
            "<EnumType Name=\"OwnershipTypes\" UnderlyingType=\"Edm.Int32\" IsFlags=\"true\">",
            "<PropertyValue Property=\"Name\" PropertyPath=\"accountnumber\"/>",
        ] {
            assert!(doc.contains(needle), "missing {needle}");
        }
        // systemuser inherits its key (ownerid) from principal.
        let su = &doc[doc.find("<EntityType Name=\"systemuser\"").unwrap()..];
        let su = &su[..su.find("</EntityType>").unwrap()];
        assert!(!su.contains("<Key>"));
        // Picklist option values are not in $metadata.
        assert!(!doc.contains("Preferred Customer"));
        // No annotations unless asked.
        assert!(!doc.contains("Org.OData.Core.V1.Computed"));
    }

    #[test]
    fn annotations_mark_read_only_properties() {
        let s = Schema::builtin();
        let doc = csdl(&s, true);
        let created = &doc[doc.find("<Property Name=\"createdon\"").unwrap()..];
        let created = &created[..created.find("</Property>").unwrap()];
        assert!(created.contains("Org.OData.Core.V1.Computed"));
        assert!(created.contains("Org.OData.Core.V1.Permission/Read"));
        let name = &doc[doc.find("<Property Name=\"name\"").unwrap()..];
        let name = &name[..name.find("</Property>").unwrap()];
        assert!(name.contains("Org.OData.Core.V1.Description\" String=\"Account Name\""));
        assert!(!name.contains("Computed"));
        // Descriptions with special characters are escaped.
        assert!(doc.contains("String=\"Address 1: State/Province\""));
    }

    #[test]
    fn every_nav_partner_exists_on_the_target() {
        let s = Schema::builtin();
        let doc = csdl(&s, false);
        for r in &s.relationships {
            assert!(doc.contains(&format!("<NavigationProperty Name=\"{}\"", r.referenced_nav)));
            assert!(doc.contains(&format!("<NavigationProperty Name=\"{}\"", r.referencing_nav)));
        }
    }
}
