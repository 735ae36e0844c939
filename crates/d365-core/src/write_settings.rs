//! [`WriteSettings`]: the write options a user gives — `d365 query` flags, the keyword
//! arguments of Python's `Cursor.execute` — checked in one place and turned into the SQL
//! engine's [`DmlOptions`].

use d365_client::WriteOptions;
use d365_sql::DmlOptions;

use crate::error::Error;

/// Write options as given (see the module docs); `None`/`false` keep the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSettings {
    /// Rows per bulk request (`CreateMultiple`/`UpdateMultiple`/`$batch` part count).
    pub chunk_size: Option<usize>,
    /// Requests in flight (default: the service's `x-ms-dop-hint`).
    pub parallel: Option<usize>,
    /// Skip custom synchronous plug-ins (`MSCRM.BypassCustomPluginExecution`).
    pub bypass_plugins: bool,
    /// Update and delete only rows unchanged since they were read (`If-Match` with the ETag).
    pub optimistic: bool,
    /// All rows in one transaction (a `$batch` change set): all written or none.
    pub atomic: bool,
    /// Act for this user (`MSCRMCallerID`): a `systemuserid`.
    pub caller_id: Option<String>,
    /// Plan the write and report it, send nothing.
    pub dry_run: bool,
    /// Keep the input rows of failed writes for an errors file.
    pub keep_failed_inputs: bool,
}

impl WriteSettings {
    /// The engine's options, or [`Error::BadInput`] naming what is wrong.
    pub fn dml_options(&self) -> Result<DmlOptions, Error> {
        let mut write = WriteOptions::default();
        if let Some(n) = self.chunk_size {
            write.chunk_size = n;
        }
        // Sizes and counts are checked by the writer, against the service's limits.
        write.max_parallel = self.parallel;
        write.bypass_plugins = self.bypass_plugins;
        write.optimistic = self.optimistic;
        write.atomic = self.atomic;
        if let Some(c) = &self.caller_id {
            let id = uuid::Uuid::try_parse(c.trim()).map_err(|_| {
                Error::BadInput(format!("caller id '{c}' is not a GUID: give the systemuserid of the user to act for"))
            })?;
            write.caller_id = Some(id);
        }
        Ok(DmlOptions { dry_run: self.dry_run, write, keep_failed_inputs: self.keep_failed_inputs, params: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_engine_options_or_a_clear_error() {
        let s = WriteSettings {
            chunk_size: Some(250),
            parallel: Some(3),
            atomic: true,
            caller_id: Some(" 5F9C8E21-3B0A-4D6E-9C1F-7A2B3C4D5E60 ".into()),
            dry_run: true,
            ..Default::default()
        };
        let o = s.dml_options().unwrap();
        assert_eq!((o.write.chunk_size, o.write.max_parallel, o.write.atomic, o.dry_run), (250, Some(3), true, true));
        assert_eq!(o.write.caller_id.unwrap().to_string(), "5f9c8e21-3b0a-4d6e-9c1f-7a2b3c4d5e60");
        let defaults = WriteSettings::default().dml_options().unwrap();
        assert_eq!(defaults.write.chunk_size, WriteOptions::default().chunk_size);
        let e = WriteSettings { caller_id: Some("bob".into()), ..Default::default() }.dml_options().unwrap_err();
        assert!(matches!(e, Error::BadInput(_)) && e.to_string().contains("caller id 'bob' is not a GUID"), "{e}");
    }
}
