//! Table changes `CREATE TABLE IF NOT EXISTS` cannot make on a table that already exists.
//!
//! - `checkpoint_bases` was first created with ClickHouse's default of 8,192 rows per index
//!   granule. Its rows are chunks of up to 4 MiB, so once merges put a few hundred of them in
//!   one part, reading one base reads the whole granule: ClickHouse 18.16 then refused the
//!   read ("Memory limit (for query) exceeded ... while reading column state", found by the
//!   1 M-events-a-day benchmark after an hour of merges). It is now one row per granule.
//! - `survey_facts` was versioned by `is_final` alone; a revised survey's fact is rewritten,
//!   so it is now versioned by `version` (settled = 1 + revisions), with `revision`.
//!
//! Such a table is renamed aside before the DDL runs and copied into the new one after.
//! - `window_aggregates` gained `sign` (-1 on rows taking a revised survey out): an added
//!   column with a default, so an `ALTER` suffices.

use super::clickhouse::ClickHouseSink;
use super::SinkError;

/// A table rebuilt by rename, DDL, copy.
struct Rebuild {
    table: &'static str,
    aside: &'static str,
    /// Whether the engine definition of an existing table is already the new one.
    current: fn(&str) -> bool,
    /// The copy's SELECT list from the table moved aside.
    select: &'static str,
}

const REBUILDS: [Rebuild; 2] = [
    Rebuild {
        table: "checkpoint_bases",
        aside: "checkpoint_bases_granule8192",
        current: |engine| granularity(engine) == Some(1),
        // Without PREWHERE, 18.16 reads a coarse granule's chunks once instead of failing.
        select: "* FROM {aside} SETTINGS optimize_move_to_prewhere = 0, max_block_size = 1",
    },
    Rebuild {
        table: "survey_facts",
        aside: "survey_facts_by_is_final",
        current: |engine| engine.contains("ReplacingMergeTree(version)"),
        select: "*, toUInt32(0), toUInt32(is_final) FROM {aside}",
    },
];

async fn run(sink: &ClickHouseSink, table: &'static str, sql: &str) -> Result<(), SinkError> {
    sink.client()
        .query(sql)
        .execute()
        .await
        .map_err(|e| SinkError::query("migrate", table, e))
}

async fn engine(sink: &ClickHouseSink, table: &'static str) -> Result<Option<String>, SinkError> {
    let sql = "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?";
    let engine: Vec<String> = sink
        .client()
        .query(sql)
        .bind(sink.database())
        .bind(table)
        .fetch_all()
        .await
        .map_err(|e| SinkError::query("migrate", table, e))?;
    Ok(engine.into_iter().next())
}

/// Before the DDL: moves tables of an older layout aside.
pub async fn before_ddl(sink: &ClickHouseSink) -> Result<(), SinkError> {
    let db = sink.database();
    for r in &REBUILDS {
        let Some(engine) = engine(sink, r.table).await? else {
            continue;
        };
        if (r.current)(&engine) {
            continue;
        }
        tracing::warn!(
            table = r.table,
            "table of an older layout: moving it aside to copy it into the new one"
        );
        let sql = format!("RENAME TABLE {db}.{} TO {db}.{}", r.table, r.aside);
        run(sink, r.table, &sql).await?;
    }
    Ok(())
}

/// After the DDL: copies tables moved aside (now or by an interrupted earlier start) into
/// the new ones and drops them (a copy repeated after a crash inserts rows twice, which
/// the tables' replacing engines and `delivery::bases::read` fold), then adds columns.
pub async fn after_ddl(sink: &ClickHouseSink) -> Result<(), SinkError> {
    let db = sink.database();
    for r in &REBUILDS {
        if engine(sink, r.aside).await?.is_none() {
            continue;
        }
        let select = r.select.replace("{aside}", &format!("{db}.{}", r.aside));
        let copy = format!("INSERT INTO {db}.{} SELECT {select}", r.table);
        run(sink, r.table, &copy).await?;
        run(
            sink,
            r.table,
            &format!("DROP TABLE IF EXISTS {db}.{}", r.aside),
        )
        .await?;
        tracing::info!(table = r.table, "copied into the new layout");
    }
    let has_sign: Vec<u8> = sink
        .client()
        .query("SELECT 1 FROM system.columns WHERE database = ? AND table = 'window_aggregates' AND name = 'sign'")
        .bind(db)
        .fetch_all()
        .await
        .map_err(|e| SinkError::query("migrate", "window_aggregates", e))?;
    if has_sign.is_empty() {
        let sql = format!("ALTER TABLE {db}.window_aggregates ADD COLUMN sign Int8 DEFAULT 1");
        run(sink, "window_aggregates", &sql).await?;
        tracing::info!(table = "window_aggregates", "added column sign");
    }
    Ok(())
}

/// The `index_granularity` an engine definition names (ClickHouse prints it always).
fn granularity(engine: &str) -> Option<u64> {
    let at = engine.find("index_granularity = ")?;
    engine
        .get(at + "index_granularity = ".len()..)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::granularity;

    #[test]
    fn the_granularity_is_read_from_the_engine_definition() {
        let old = "ReplacingMergeTree(version) ORDER BY (a, b) SETTINGS index_granularity = 8192";
        assert_eq!(granularity(old), Some(8192));
        let new = "ReplacingMergeTree(version) ORDER BY (a, b) SETTINGS index_granularity = 1";
        assert_eq!(granularity(new), Some(1));
        let more = "MergeTree ORDER BY a SETTINGS index_granularity = 1, x = 2";
        assert_eq!(granularity(more), Some(1));
        assert_eq!(granularity("Memory"), None);
    }
}
