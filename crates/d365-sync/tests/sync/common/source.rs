//! Ground truth from the emulator's own store, shared by the sync tests of `d365-sync` and of
//! the CLI (included there by path).

use d365_emulator::Emulator;

/// (lower-case contactid, lastname or '') of every contact, sorted: what a copy of `contact`
/// must hold.
pub fn contacts(emu: &Emulator) -> Vec<(String, String)> {
    let mut v = emu
        .state()
        .store
        .with_conn(|c| {
            let mut st = c.prepare("SELECT lower(contactid), coalesce(lastname, '') FROM contact")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .expect("store")
        .expect("query");
    v.sort();
    v
}
