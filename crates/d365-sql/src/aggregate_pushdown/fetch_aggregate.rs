//! Aggregates grouped by a part of a date (`GROUP BY date_part('year', createdon)`,
//! `EXTRACT(MONTH FROM …)`): `$apply` cannot group by dates, FetchXML can
//! (`<attribute groupby="true" dategrouping="year" usertimezone="false">`, in UTC as SQL
//! reads the instants). An [`AggregateSpec`] with [`FetchAggregate`] sends its requests as
//! FetchXML `aggregate="true"` queries instead of `$apply`; the partial states, the range
//! splitting past 50,000 rows and the merge are the same.
//!
//! Only the parts whose FetchXML meaning equals SQL's are pushed: `year`, `month` (of the year)
//! and `day` (of the month). FetchXML's `week` counts weeks from Sunday and its `quarter` is of
//! the fiscal year, unlike SQL's ISO weeks and calendar quarters. FetchXML sums no values to
//! 0 where SQL gives NULL, so each sum comes with the count of its values (`countcolumn`) and
//! is NULL where that count is 0.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_plan::PhysicalExpr;

use d365_client::{FORMATTED_VALUE, LOOKUP_LOGICAL_NAME};

use super::spec::AggregateSpec;
use crate::arrow_schema::{ColumnRole, ColumnSpec};
use crate::join_pushdown::fetch_filter::{attribute_of, fetch_filter, xml_escape};

/// One `groupby` attribute of the FetchXML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchGroup {
    /// The attribute's logical name.
    pub attribute: String,
    /// `dategrouping`, for a date part.
    pub dategrouping: Option<&'static str>,
    /// The alias its values come back under.
    pub alias: String,
}

/// How an [`AggregateSpec`] is sent as FetchXML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchAggregate {
    /// The grouping attributes (a group column of the spec reads the one of its alias).
    pub groups: Vec<FetchGroup>,
}

/// Alias of the value count that comes with the sum under `alias`.
pub fn sum_count_alias(alias: &str) -> String {
    format!("{alias}_n")
}

/// The argument and FetchXML `dategrouping` of `date_part('<part>', arg)` when FetchXML groups
/// that part as SQL does.
pub fn date_part_of(expr: &Arc<dyn PhysicalExpr>) -> Option<(&Arc<dyn PhysicalExpr>, &'static str)> {
    let f = expr.downcast_ref::<ScalarFunctionExpr>()?;
    if !f.name().eq_ignore_ascii_case("date_part") {
        return None;
    }
    let [part, arg] = f.args() else { return None };
    let part = match part.downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)) | ScalarValue::LargeUtf8(Some(p)) => p,
        _ => return None,
    };
    let grouping = match part.to_ascii_lowercase().as_str() {
        "year" | "years" => "year",
        "month" | "months" => "month",
        "day" | "days" => "day",
        _ => return None,
    };
    Some((arg, grouping))
}

/// The FetchXML groupings of `groupings` (each group's property and date part), one alias per
/// distinct grouping; each group column then reads its alias (a label its alias's formatted
/// value).
pub fn fetch_groups(groups: &mut [ColumnSpec], groupings: &[(String, Option<&'static str>)]) -> FetchAggregate {
    let mut out: Vec<FetchGroup> = Vec::new();
    for (spec, (property, part)) in groups.iter_mut().zip(groupings) {
        let attribute = attribute_of(property).to_string();
        let alias = match out.iter().find(|g| g.attribute == attribute && g.dategrouping == *part) {
            Some(g) => g.alias.clone(),
            None => {
                let alias = format!("g{}", out.len());
                out.push(FetchGroup { attribute, dategrouping: *part, alias: alias.clone() });
                alias
            }
        };
        spec.json_key = match spec.role {
            ColumnRole::Value => alias,
            ColumnRole::FormattedValue => format!("{alias}@{FORMATTED_VALUE}"),
            ColumnRole::LookupLogicalName => format!("{alias}@{LOOKUP_LOGICAL_NAME}"),
        };
    }
    FetchAggregate { groups: out }
}

impl AggregateSpec {
    /// The FetchXML of one request over the rows matching `extra` (a part's range) besides the
    /// scan's filter: the main request (`counted` = `None`: the row count and every aggregate)
    /// or the count of rows where `counted` is not null. `None` when a filter has no FetchXML
    /// form (the analysis refuses such aggregates, so this does not happen in a plan).
    pub fn fetch_xml(&self, fetch: &FetchAggregate, extra: Option<&str>, counted: Option<&str>) -> Option<String> {
        let not_null = counted.map(|p| format!("{p} ne null"));
        let conditions: Vec<&str> =
            [self.filter.as_deref(), extra, not_null.as_deref()].into_iter().flatten().collect();
        let mut x =
            format!("<fetch aggregate=\"true\"><entity name=\"{}\">", xml_escape(&self.table.entity.logical_name));
        for g in &fetch.groups {
            x.push_str(&format!(
                "<attribute name=\"{}\" groupby=\"true\" alias=\"{}\"",
                xml_escape(&g.attribute),
                g.alias
            ));
            if let Some(d) = g.dategrouping {
                x.push_str(&format!(" dategrouping=\"{d}\" usertimezone=\"false\""));
            }
            x.push_str("/>");
        }
        let pk = xml_escape(&self.table.primary_key);
        x.push_str(&format!("<attribute name=\"{pk}\" aggregate=\"count\" alias=\"c\"/>"));
        if counted.is_none() {
            for a in &self.aggregates {
                let attribute = xml_escape(attribute_of(&a.property));
                x.push_str(&format!(
                    "<attribute name=\"{attribute}\" aggregate=\"{}\" alias=\"{}\"/>",
                    a.method, a.alias
                ));
                if a.method == "sum" {
                    x.push_str(&format!(
                        "<attribute name=\"{attribute}\" aggregate=\"countcolumn\" alias=\"{}\"/>",
                        sum_count_alias(&a.alias)
                    ));
                }
            }
        }
        if !conditions.is_empty() {
            let all = conditions.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" and ");
            x.push_str(&fetch_filter(&all)?);
        }
        x.push_str("</entity></fetch>");
        Some(x)
    }
}
