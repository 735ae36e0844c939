//! Change tracking (reference §10). `Prefer: odata.track-changes` on a collection read makes
//! its last page carry `@odata.deltaLink` with a `$deltatoken` (`<version>!<MM/dd/yyyy
//! HH:mm:ss>`); the version is taken when the read *starts* and carried in the paging cookie,
//! so a row changed while the pages are read shows up again in the next delta. A delta read
//! returns rows created or changed after the token's version and `$deletedEntity` entries for
//! rows deleted since, paged by version, and ends with a fresh `@odata.deltaLink`. Tokens older
//! than `expire_change_tracking_days` are refused; only `$select` may accompany tracking.

use super::error::{DvError, DvResult};
use super::paging::{Boundary, Cookie, encode_query_value};
use super::query::{MAX_PAGE, currency_symbols, per_row_latency, row_currency_symbol, sql_error};
use super::rows::{Annotations, Projection};
use super::{Ctx, json_response};
use crate::schema::Table;
use crate::store::codec::write_json_str;
use crate::store::ddl::q;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use rusqlite::types::Value as Sql;
use time::OffsetDateTime;

/// Options that cannot accompany change tracking.
const REFUSED: &[&str] = &["$filter", "$orderby", "$expand", "$top", "$apply", "$count"];

/// Refuses what Dataverse refuses on a change-tracking read.
pub fn check_request(ctx: &Ctx, table: &Table) -> DvResult<()> {
    if !table.change_tracking {
        return Err(DvError::bad_query(format!(
            "Change tracking is not enabled for the entity '{}'. Enable it in the table's settings, or read the table without odata.track-changes.",
            table.logical_name
        )));
    }
    for opt in REFUSED {
        if ctx.query.get(opt).is_some() {
            return Err(DvError::bad_query(format!(
                "The \"{opt}\" query parameter isn't supported when Change Tracking is enabled."
            )));
        }
    }
    Ok(())
}

/// `<version>!<MM/dd/yyyy HH:mm:ss>` for `version` at `now`.
pub fn token(version: i64, now: OffsetDateTime) -> String {
    format!(
        "{version}!{:02}/{:02}/{:04} {:02}:{:02}:{:02}",
        u8::from(now.month()),
        now.day(),
        now.year(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn parse_token(text: &str) -> Option<(i64, OffsetDateTime)> {
    let (v, date) = text.trim().split_once('!')?;
    let version = v.parse().ok()?;
    let fmt = time::macros::format_description!("[month]/[day]/[year] [hour]:[minute]:[second]");
    let at = time::PrimitiveDateTime::parse(date.trim(), &fmt).ok()?.assume_utc();
    Some((version, at))
}

/// The `@odata.deltaLink` of a read of `table` whose changes up to `version` were returned.
pub fn delta_link(ctx: &Ctx, table: &Table, version: i64) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(sel) = ctx.query.get("$select") {
        parts.push(format!("$select={}", encode_query_value(sel)));
    }
    let tok = token(version, ctx.state.clock.now());
    let enc = percent_encoding::utf8_percent_encode(&tok, percent_encoding::NON_ALPHANUMERIC).to_string();
    parts.push(format!("$deltatoken={enc}"));
    format!("{}/{}?{}", ctx.api_root, table.set_name, parts.join("&"))
}

/// Adds `Preference-Applied: odata.track-changes`.
pub fn applied(resp: &mut Response) {
    resp.headers_mut().append("Preference-Applied", HeaderValue::from_static("odata.track-changes"));
}

/// `GET [API]/<set>?$deltatoken=...`: the changes since the token.
pub async fn delta(ctx: &Ctx, table: &Table) -> DvResult<Response> {
    check_request(ctx, table)?;
    let raw = ctx.query.get("$deltatoken").unwrap_or("");
    let (since, issued) = parse_token(raw).ok_or_else(|| {
        DvError::bad_query(format!(
            "The delta token '{raw}' is not valid. Follow @odata.deltaLink unchanged, or read the table again with Prefer: odata.track-changes."
        ))
    })?;
    let days = i64::from(ctx.state.config.dataverse.expire_change_tracking_days);
    let now = ctx.state.clock.now();
    if now - issued > time::Duration::days(days) {
        return Err(DvError::bad_query(format!(
            "The delta token has expired: changes are kept for {days} days (organization.expirechangetrackingindays). Read the table again with Prefer: odata.track-changes to start over."
        )));
    }
    let cookie = ctx.query.get("$skiptoken").map(Cookie::parse).transpose()?;
    let after = match &cookie {
        Some(c) => {
            c.boundaries.first().and_then(|b| b.last.as_deref()).and_then(|v| v.parse::<i64>().ok()).ok_or_else(
                || {
                    DvError::bad_query(
                        "The $skiptoken paging cookie does not match this query. Follow @odata.nextLink unchanged.",
                    )
                },
            )?
        }
        None => since,
    };
    let snapshot = match cookie.as_ref().and_then(|c| c.tracking) {
        Some(v) => v,
        None => ctx.state.store.current_version(),
    };
    let page_size = ctx.prefer.honoured_page_size().unwrap_or(MAX_PAGE).max(1);
    let ann = Annotations::from_prefer(&ctx.prefer);
    let proj = Projection::new(table, ctx.query.get("$select"), ann)?;
    let schema = ctx.schema.clone();
    let cols = proj.sql_columns(&schema, "t");
    let pk = q(&table.primary_id);
    let tn = q(&table.logical_name);
    let changes_sql = format!(
        "SELECT v, del, id FROM (\
         SELECT t.\"versionnumber\" AS v, 0 AS del, t.{pk} AS id FROM {tn} t WHERE t.\"versionnumber\" > ?1 AND t.\"versionnumber\" <= ?2 \
         UNION ALL SELECT d.version, 1, d.id FROM _deleted d WHERE d.entity = ?3 AND d.version > ?1 AND d.version <= ?2) \
         ORDER BY v LIMIT {}",
        page_size + 1
    );
    let rows_sql = format!("SELECT {}, t.{pk} FROM {tn} t WHERE t.{pk} = ?", cols.join(", "));
    let entity = table.logical_name.clone();
    let state = ctx.state.clone();
    let ncols = cols.len() + 1;
    let (changes, rows, symbols) = tokio::task::spawn_blocking(move || {
        state.store.with_conn(|c| -> rusqlite::Result<_> {
            let mut stmt = c.prepare_cached(&changes_sql)?;
            let changes: Vec<(i64, bool, String)> = stmt
                .query_map(rusqlite::params![after, snapshot, entity], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = c.prepare_cached(&rows_sql)?;
            let mut rows = Vec::new();
            for (_, del, id) in changes.iter().take(page_size) {
                if !del {
                    let row: Option<Vec<Sql>> = stmt
                        .query_map([id], |r| (0..ncols).map(|i| r.get::<_, Sql>(i)).collect())?
                        .next()
                        .transpose()?;
                    rows.extend(row);
                }
            }
            Ok((changes, rows, currency_symbols(c)?))
        })
    })
    .await
    .map_err(|e| DvError::internal(format!("delta task failed: {e}")))?
    .and_then(|r| r)
    .map_err(sql_error)?;
    let more = changes.len() > page_size;
    let page = &changes[..changes.len().min(page_size)];
    let list = if proj.explicit { format!("({})", proj.context_list()) } else { String::new() };
    let mut body = String::from("{\"@odata.context\":");
    write_json_str(&mut body, &format!("{}/$metadata#{}{list}/$delta", ctx.api_root, table.set_name));
    body.push_str(",\"value\":[");
    let mut first = true;
    for row in &rows {
        if !first {
            body.push(',');
        }
        first = false;
        let data = &row[..row.len() - 1];
        proj.write_row(&mut body, data, row_currency_symbol(table, &proj, data, &symbols), true);
    }
    for (_, _, id) in page.iter().filter(|(_, del, _)| *del) {
        if !first {
            body.push(',');
        }
        first = false;
        body.push_str("{\"@odata.context\":");
        write_json_str(&mut body, &format!("{}/$metadata#{}/$deletedEntity", ctx.api_root, table.set_name));
        body.push_str(",\"id\":");
        write_json_str(&mut body, id);
        body.push_str(",\"reason\":\"deleted\"}");
    }
    body.push(']');
    if more {
        let last = page.last().map(|(v, _, _)| v.to_string());
        let next = Cookie {
            page_number: cookie.as_ref().map_or(2, |c| c.page_number + 1),
            boundaries: vec![Boundary { column: "versionnumber".into(), last, first: None }],
            tracking: Some(snapshot),
        };
        let query: Vec<&str> = ctx.raw_query.split('&').filter(|p| !p.starts_with("$skiptoken=")).collect();
        let link = format!(
            "{}/{}?{}&$skiptoken={}",
            ctx.api_root,
            table.set_name,
            query.join("&"),
            encode_query_value(&next.to_xml())
        );
        body.push_str(",\"@odata.nextLink\":");
        write_json_str(&mut body, &link);
    } else {
        body.push_str(",\"@odata.deltaLink\":");
        write_json_str(&mut body, &delta_link(ctx, table, snapshot));
    }
    body.push('}');
    per_row_latency(ctx, page.len()).await;
    let mut resp = json_response(StatusCode::OK, body);
    super::query::applied_preferences(ctx, &mut resp, ctx.prefer.honoured_page_size().map(|_| page_size));
    Ok(resp)
}
