//! The shadow schema `rebuild_<projection>`: fresh copies of a projection's tables
//! that the rebuild fills while the live ones keep serving, then moves into
//! `public` in their place.
//!
//! The copies carry the originals' names for every constraint, index and serial
//! sequence, so that once moved they are indistinguishable from what the
//! migrations created, and a later migration naming one of them still works.

use sqlx::{Connection, PgConnection};

use crate::projector::Projection;

/// A projection's shadow schema, created empty.
pub(super) struct Shadow {
    projection: Projection,
    schema: String,
    /// `BIGSERIAL`-style columns, each given a sequence of its own in the shadow
    /// (a copied default would still draw from the live table's sequence, which
    /// is dropped with the live table).
    serials: Vec<Serial>,
}

struct Serial {
    table: &'static str,
    column: String,
    sequence: String,
}

impl Shadow {
    /// Drops a leftover shadow (from a crashed rebuild) and creates a new, empty one:
    /// each of the projection's tables, plus a `parked_events` of its own so that
    /// messages parked by the replay do not mix with the live ones until the switch.
    pub(super) async fn create(connection: &mut PgConnection, projection: Projection) -> Result<Self, sqlx::Error> {
        let schema = format!("rebuild_{}", projection.name());
        let mut shadow = Self { projection, schema, serials: Vec::new() };
        let schema = shadow.schema.clone();
        let mut tx = connection.begin().await?;
        execute(&mut tx, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
        execute(&mut tx, format!("CREATE SCHEMA {schema}")).await?;
        for &table in projection.tables() {
            shadow.copy_table(&mut tx, table).await?;
        }
        execute(&mut tx, format!("CREATE TABLE {schema}.parked_events (LIKE public.parked_events INCLUDING DEFAULTS)"))
            .await?;
        tx.commit().await?;
        Ok(shadow)
    }

    pub(super) fn projection(&self) -> Projection {
        self.projection
    }

    /// `search_path` for a transaction that applies to the shadow: the model code
    /// names tables unqualified, so it writes the shadow's without knowing.
    pub(super) fn search_path(&self) -> String {
        format!("SET LOCAL search_path TO {}, public", self.schema)
    }

    async fn copy_table(&mut self, tx: &mut PgConnection, table: &'static str) -> Result<(), sqlx::Error> {
        let schema = &self.schema;
        let original = format!("public.{table}");
        // Columns, defaults, CHECK and NOT NULL constraints, identity, storage and
        // comments. Indexes are added below under their original names, which LIKE
        // would not keep.
        execute(tx, format!("CREATE TABLE {schema}.{table} (LIKE {original} INCLUDING ALL EXCLUDING INDEXES)")).await?;
        let constraints: Vec<(String, String)> = sqlx::query_as(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x', 'f') ORDER BY contype = 'f', conname",
        )
        .bind(&original)
        .fetch_all(&mut *tx)
        .await?;
        for (name, definition) in constraints {
            execute(tx, format!("ALTER TABLE {schema}.{table} ADD CONSTRAINT {} {definition}", quote(&name))).await?;
        }
        // Indexes that no constraint owns (those came with their constraint above).
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = $1::regclass \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY i.indexrelid",
        )
        .bind(&original)
        .fetch_all(&mut *tx)
        .await?;
        let (live_target, shadow_target) = (format!(" ON {original} "), format!(" ON {schema}.{table} "));
        for definition in indexes {
            // `CREATE [UNIQUE] INDEX <name> ON public.<table> USING ...`: the same
            // index, same name, on the shadow table (index names are per schema).
            if definition.matches(&live_target).count() != 1 {
                return Err(sqlx::Error::Protocol(format!("cannot copy index definition {definition:?}")));
            }
            execute(tx, definition.replacen(&live_target, &shadow_target, 1)).await?;
        }
        // Serial columns: the sequence a column's default draws from and that the
        // column owns ('a' dependency; identity columns, 'i', got their own from LIKE).
        let serials: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT a.attname::text, s.relname::text, format_type(q.seqtypid, NULL) \
             FROM pg_depend d \
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
             JOIN pg_sequence q ON q.seqrelid = s.oid \
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
             AND d.refobjid = $1::regclass AND d.deptype = 'a'",
        )
        .bind(&original)
        .fetch_all(&mut *tx)
        .await?;
        for (column, sequence, data_type) in serials {
            let (column_name, sequence_name) = (quote(&column), format!("{schema}.{}", quote(&sequence)));
            execute(
                tx,
                format!("CREATE SEQUENCE {sequence_name} AS {data_type} OWNED BY {schema}.{table}.{column_name}"),
            )
            .await?;
            let regclass = sequence_name.replace('\'', "''");
            execute(
                tx,
                format!(
                    "ALTER TABLE {schema}.{table} ALTER COLUMN {column_name} \
                     SET DEFAULT nextval('{regclass}'::regclass)"
                ),
            )
            .await?;
            self.serials.push(Serial { table, column, sequence });
        }
        Ok(())
    }

    /// Planner statistics for the filled tables, so the first queries after the
    /// switch do not plan on an empty table's guesses. Outside the switch, to keep
    /// that transaction short.
    pub(super) async fn analyze(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        for table in self.projection.tables() {
            execute(connection, format!("ANALYZE {}.{table}", self.schema)).await?;
        }
        Ok(())
    }

    /// Sequences are not transactional: after a rolled-back switch, brings each
    /// serial back to just after the largest value its table keeps, so the rows
    /// applied again get the numbers a replay from scratch would give them.
    pub(super) async fn reset_sequences(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        for serial in &self.serials {
            let (schema, table, column) = (&self.schema, serial.table, quote(&serial.column));
            let sequence = format!("{schema}.{}", quote(&serial.sequence)).replace('\'', "''");
            execute(
                connection,
                format!(
                    "SELECT setval('{sequence}'::regclass, \
                     coalesce((SELECT max({column}) FROM {schema}.{table}), 0) + 1, false)"
                ),
            )
            .await?;
        }
        Ok(())
    }

    /// Puts the shadow tables in place of the live ones and the shadow's parked
    /// messages in place of the projection's, inside the caller's transaction, then
    /// drops the emptied shadow schema.
    pub(super) async fn replace_live(&self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        let (schema, tables) = (&self.schema, self.projection.tables());
        // Every live table at once, before anything is dropped: readers wait (for
        // as long as this transaction has left) instead of meeting a missing table.
        let live: Vec<String> = tables.iter().map(|table| format!("public.{table}")).collect();
        execute(tx, format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", live.join(", "))).await?;
        for table in tables {
            // The live table's indexes, constraints and owned sequence go with it;
            // the shadow's (same names) move with theirs.
            execute(tx, format!("DROP TABLE public.{table}")).await?;
            execute(tx, format!("ALTER TABLE {schema}.{table} SET SCHEMA public")).await?;
        }
        sqlx::query("DELETE FROM public.parked_events WHERE projection = $1")
            .bind(self.projection.name())
            .execute(&mut *tx)
            .await?;
        execute(
            tx,
            format!(
                "INSERT INTO public.parked_events (projection, stream_sequence, subject, error, payload, parked_at) \
                 SELECT projection, stream_sequence, subject, error, payload, parked_at \
                 FROM {schema}.parked_events ORDER BY id"
            ),
        )
        .await?;
        execute(tx, format!("DROP TABLE {schema}.parked_events")).await?;
        // RESTRICT: anything else left in the schema is a surprise worth an error.
        execute(tx, format!("DROP SCHEMA {schema} RESTRICT")).await?;
        Ok(())
    }

    /// Drops the shadow of a rebuild that failed.
    pub(super) async fn discard(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        execute(connection, format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)).await
    }
}

/// Runs DDL built here: table and schema names are this crate's constants, other
/// names come from the catalog and are quoted.
async fn execute(connection: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(connection).await?;
    Ok(())
}

/// A name as one SQL identifier, whatever it contains.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
