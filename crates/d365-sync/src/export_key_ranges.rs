//! The export of a Finance & Operations entity: its key ranges, planned with the export's
//! checkpoint (one partition and part file each), read in parallel by
//! [`DataverseClient::keyset_scan_ranges`], each range's last key checkpointed after every page.
//! The rest of the export (the checkpoint, part files, assembling the output) is
//! [`crate::export`]'s.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use d365_client::DataverseClient;
use futures::StreamExt;

use crate::checkpoint::Checkpoint;
use crate::error::SyncError;
use crate::export::{DURABLE_EVERY, ExportOptions, part_path, write_segment};
use crate::typed::TypedReader;

/// The read of a Finance & Operations entity: its key ranges (planned with the checkpoint) read
/// in parallel, one part file each (see [`DataverseClient::keyset_scan_ranges`]: exact while
/// rows are written, which `$skip` paging is not). The checkpoint records each range's last key
/// after every page, so a resumed export re-reads at most one page per unfinished range.
/// Returns the ranges read at once.
pub(crate) async fn export_key_ranges(
    client: &DataverseClient,
    options: &ExportOptions,
    reader: &TypedReader,
    dir: &Path,
    ckpt_path: &Path,
    ckpt: &mut Checkpoint,
) -> Result<usize, SyncError> {
    let keys = reader.schema.key_fields.clone();
    if keys.is_empty() || ckpt.key_ranges.is_empty() {
        return Err(SyncError::Unsupported(format!(
            "entity '{}' lists no key fields in its metadata: it cannot be read by key ranges",
            reader.schema.entity.logical_name
        )));
    }
    let parallel = options.parallel.unwrap_or(d365_sql::scan::FINOPS_DEFAULT_PARALLEL);
    let query = reader.query(options.filter.as_deref(), options.page_size);
    let progress = std::sync::Arc::new(d365_client::ScanProgress::default());
    let resumed: u64 = ckpt.key_ranges.iter().map(|r| r.rows).sum();
    let _tracker = options.progress.track(&format!("export {}", ckpt.entity_set), client, progress.clone(), resumed);
    let mut pages = client.keyset_scan_ranges(&query, keys, ckpt.key_ranges.clone(), parallel);
    let mut files: HashMap<u64, (File, u64)> = HashMap::new();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut last_sync = Instant::now();
    while let Some(page) = pages.next().await {
        let page = page?;
        let id = page.range as u64;
        let batch = reader.decode(&page.body, page.rows, &[])?;
        buf.clear();
        if batch.num_rows() > 0 {
            write_segment(&mut buf, &batch)?;
        }
        let path = part_path(dir, id);
        let (file, len) = match files.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let f = OpenOptions::new().create(true).append(true).open(&path).map_err(SyncError::io(&path))?;
                e.insert((f, ckpt.part_bytes.get(&id).copied().unwrap_or(0)))
            }
        };
        file.write_all(&buf).map_err(SyncError::io(&path))?;
        *len += buf.len() as u64;
        ckpt.part_bytes.insert(id, *len);
        if let Some(p) = ckpt.partitions.get_mut(&id) {
            p.rows = page.state.rows;
            p.done = page.state.done;
        }
        if let Some(r) = ckpt.key_ranges.iter_mut().find(|r| r.id == page.range) {
            *r = page.state.clone();
        }
        progress.rows.fetch_add(batch.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
        // As the partitioned export does: the part files synced before the checkpoint about
        // once a second with `fsync`, the checkpoint replaced atomically after every page.
        let durable = options.fsync && last_sync.elapsed() >= DURABLE_EVERY;
        if durable {
            for (f, _) in files.values() {
                f.sync_data().map_err(SyncError::io(dir))?;
            }
            last_sync = Instant::now();
        }
        ckpt.save(ckpt_path, durable)?;
    }
    if options.fsync {
        for (f, _) in files.values() {
            f.sync_data().map_err(SyncError::io(dir))?;
        }
        ckpt.save(ckpt_path, true)?;
    }
    if !ckpt.complete() {
        return Err(SyncError::InvalidArgument("the read ended before every key range was read".into()));
    }
    Ok(parallel)
}
