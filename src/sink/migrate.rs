//! Table changes `CREATE TABLE IF NOT EXISTS` cannot make on a table that already exists.
//!
//! `checkpoint_bases` was first created with ClickHouse's default of 8,192 rows per index
//! granule. Its rows are chunks of up to 4 MiB, so once merges put a few hundred of them in
//! one part, reading one base reads the whole granule: ClickHouse 18.16 then refused the
//! read ("Memory limit (for query) exceeded ... while reading column state", found by the
//! 1 M-events-a-day benchmark after an hour of merges). The table is now one row per granule;
//! an older one is renamed aside before the DDL runs and copied into the new one after.

use super::clickhouse::ClickHouseSink;
use super::SinkError;

const ASIDE: &str = "checkpoint_bases_granule8192";

/// Before the DDL: moves a `checkpoint_bases` with coarse granules aside.
pub async fn before_ddl(sink: &ClickHouseSink) -> Result<(), SinkError> {
    let sql =
        "SELECT engine_full FROM system.tables WHERE database = ? AND name = 'checkpoint_bases'";
    let engine: Vec<String> = sink
        .client()
        .query(sql)
        .bind(sink.database())
        .fetch_all()
        .await
        .map_err(|e| SinkError::query("migrate", "checkpoint_bases", e))?;
    let Some(engine) = engine.first() else {
        return Ok(());
    };
    if granularity(engine) == Some(1) {
        return Ok(());
    }
    tracing::warn!("checkpoint_bases has coarse index granules: moving it aside to copy it into the new layout");
    let db = sink.database();
    let sql = format!("RENAME TABLE {db}.checkpoint_bases TO {db}.{ASIDE}");
    sink.client()
        .query(&sql)
        .execute()
        .await
        .map_err(|e| SinkError::query("migrate", "checkpoint_bases", e))
}

/// After the DDL: copies a table moved aside (now or by an interrupted earlier start) into
/// the new one and drops it. A copy repeated after a crash stores chunks twice, which a
/// read drops (`delivery::bases::read`).
pub async fn after_ddl(sink: &ClickHouseSink) -> Result<(), SinkError> {
    let db = sink.database();
    let exists: Vec<u8> = sink
        .client()
        .query("SELECT 1 FROM system.tables WHERE database = ? AND name = ?")
        .bind(db)
        .bind(ASIDE)
        .fetch_all()
        .await
        .map_err(|e| SinkError::query("migrate", "checkpoint_bases", e))?;
    if exists.is_empty() {
        return Ok(());
    }
    // Without PREWHERE, 18.16 reads a coarse granule's chunks once instead of failing.
    let copy = format!(
        "INSERT INTO {db}.checkpoint_bases SELECT * FROM {db}.{ASIDE} \
         SETTINGS optimize_move_to_prewhere = 0, max_block_size = 1"
    );
    for sql in [copy, format!("DROP TABLE IF EXISTS {db}.{ASIDE}")] {
        sink.client()
            .query(&sql)
            .execute()
            .await
            .map_err(|e| SinkError::query("migrate", "checkpoint_bases", e))?;
    }
    tracing::info!("checkpoint_bases copied into the new layout");
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
