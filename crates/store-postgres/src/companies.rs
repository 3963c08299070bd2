//! Companies: core's [`CompanyTx`] answered from memory and written behind
//! (the companies a write names are loaded and locked with one query first,
//! then inserted and updated with one set-based statement each), the native
//! CRUD and the list.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use convene_core::batch::{self, BatchOptions, BatchOutcome, CompanyTx, CompanyUpsert};
use convene_core::company::{Company, CompanyChanges, CompanyFilter};
use convene_core::field::{Entity, FieldRegistry, FieldType};
use convene_core::ids::now;
use convene_core::page::{Page, PageRequest};
use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::Row;

use crate::db::{Tx, conn, execute, query, query_opt};
use crate::rows::{get, insert_inferred_fields, load_registry, object};

const COLUMNS: &str = "id, external_id, domain, traits, created_at, updated_at";

fn company_from_row(row: &Row) -> Result<Company> {
    Ok(Company {
        id: get(row, "id")?,
        external_id: get(row, "external_id")?,
        domain: get(row, "domain")?,
        traits: object(row, "traits")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// core's view of a company transaction: loaded up front, written by [`PgCompanyTx::flush`].
pub(crate) struct PgCompanyTx {
    by_external_id: HashMap<String, Company>,
    registry: FieldRegistry,
    new_fields: Vec<(String, FieldType)>,
    reserved: Vec<i64>,
    /// Companies to write, by id: true when new.
    dirty: HashMap<i64, bool>,
}

impl PgCompanyTx {
    /// Loads (and locks) the companies with these external ids and the
    /// registry, and reserves an id for each external id not found.
    pub(crate) async fn load(cw: &ClientWrapper, ws: &str, external_ids: &[&str]) -> Result<Self> {
        let rows = query(
            cw,
            &format!(
                "SELECT {COLUMNS} FROM companies WHERE workspace_id = $1 AND external_id = ANY($2) ORDER BY id FOR UPDATE"
            ),
            &[&ws, &external_ids],
        )
        .await?;
        let mut by_external_id = HashMap::new();
        for row in &rows {
            let c = company_from_row(row)?;
            by_external_id.insert(c.external_id.clone(), c);
        }
        let missing = {
            let mut distinct: Vec<&str> =
                external_ids.iter().copied().filter(|id| !by_external_id.contains_key(*id)).collect();
            distinct.sort_unstable();
            distinct.dedup();
            distinct.len()
        };
        Ok(PgCompanyTx {
            by_external_id,
            registry: load_registry(cw, ws, Entity::Company).await?,
            new_fields: Vec::new(),
            reserved: reserve_ids(cw, missing).await?,
            dirty: HashMap::new(),
        })
    }

    /// Writes what the core functions changed.
    pub(crate) async fn flush(&self, cw: &ClientWrapper, ws: &str) -> Result<()> {
        insert_inferred_fields(cw, ws, Entity::Company, &self.new_fields).await?;
        let companies: Vec<(&Company, bool)> =
            self.by_external_id.values().filter_map(|c| self.dirty.get(&c.id).map(|new| (c, *new))).collect();
        for new in [true, false] {
            let rows: Vec<&Company> = companies.iter().filter(|(_, n)| *n == new).map(|(c, _)| *c).collect();
            if rows.is_empty() {
                continue;
            }
            let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
            let external: Vec<&str> = rows.iter().map(|c| c.external_id.as_str()).collect();
            let domains: Vec<Option<&str>> = rows.iter().map(|c| c.domain.as_deref()).collect();
            let traits: Vec<String> =
                rows.iter().map(|c| serde_json::to_string(&c.traits).unwrap_or_else(|_| "{}".into())).collect();
            let created: Vec<DateTime<Utc>> = rows.iter().map(|c| c.created_at).collect();
            let updated: Vec<DateTime<Utc>> = rows.iter().map(|c| c.updated_at).collect();
            let sql = if new {
                "INSERT INTO companies (workspace_id, id, external_id, domain, traits, created_at, updated_at)
                 SELECT $1, v.id, v.e, v.d, v.t::jsonb, v.c, v.u
                 FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
                      AS v(id, e, d, t, c, u)"
            } else {
                "UPDATE companies x SET external_id = v.e, domain = v.d, traits = v.t::jsonb, updated_at = v.u
                 FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
                      AS v(id, e, d, t, c, u)
                 WHERE x.workspace_id = $1 AND x.id = v.id"
            };
            execute(cw, sql, &[&ws, &ids, &external, &domains, &traits, &created, &updated]).await?;
        }
        Ok(())
    }
}

impl CompanyTx for PgCompanyTx {
    fn find_company(&mut self, _ws: &str, external_id: &str) -> Result<Option<Company>> {
        Ok(self.by_external_id.get(external_id).cloned())
    }

    fn company_registry(&mut self, _ws: &str) -> Result<&mut FieldRegistry> {
        Ok(&mut self.registry)
    }

    fn record_company_fields(&mut self, _ws: &str, fields: &[(String, FieldType)]) -> Result<()> {
        for field in fields {
            if !self.new_fields.iter().any(|(n, _)| *n == field.0) {
                self.new_fields.push(field.clone());
            }
        }
        Ok(())
    }

    fn insert_company(&mut self, _ws: &str, company: &Company) -> Result<i64> {
        let id = self.reserved.pop().ok_or_else(|| Error::Internal("no company id reserved".into()))?;
        self.by_external_id.insert(company.external_id.clone(), Company { id, ..company.clone() });
        self.dirty.insert(id, true);
        Ok(id)
    }

    fn update_company(&mut self, _ws: &str, company: &Company) -> Result<()> {
        self.by_external_id.retain(|_, c| c.id != company.id);
        self.by_external_id.insert(company.external_id.clone(), company.clone());
        self.dirty.entry(company.id).or_insert(false);
        Ok(())
    }
}

/// Reserves `n` company ids from the sequence.
async fn reserve_ids(cw: &ClientWrapper, n: usize) -> Result<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows = query(
        cw,
        "SELECT nextval(pg_get_serial_sequence('companies', 'id')) FROM generate_series(1::bigint, $1::bigint)",
        &[&(n as i64)],
    )
    .await?;
    rows.iter().map(|r| r.try_get::<_, i64>(0).map_err(crate::error::db)).collect()
}

async fn load(cw: &ClientWrapper, ws: &str, id: i64, lock: bool) -> Result<Company> {
    let sql = format!(
        "SELECT {COLUMNS} FROM companies WHERE workspace_id = $1 AND id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = query_opt(cw, &sql, &[&ws, &id]).await?;
    row.as_ref().map(company_from_row).transpose()?.ok_or(Error::NotFound { entity: "company" })
}

pub(crate) async fn get_one(pool: &Pool, ws: &str, id: i64) -> Result<Company> {
    let c = conn(pool).await?;
    load(&c, ws, id, false).await
}

pub(crate) async fn create(pool: &Pool, ws: &str, changes: &CompanyChanges) -> Result<Company> {
    let external_id = changes.require_external_id()?.to_string();
    let tx = Tx::begin(pool).await?;
    let result = async {
        let mut ctx = PgCompanyTx::load(tx.c(), ws, &[external_id.as_str()]).await?;
        if ctx.by_external_id.contains_key(&external_id) {
            return Err(Error::Conflict { entity: "company", field: "external_id".into(), row: None });
        }
        let (_, company) = batch::upsert_company(&mut ctx, ws, &external_id, changes, now())?;
        ctx.flush(tx.c(), ws).await?;
        Ok(company)
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn update(pool: &Pool, ws: &str, id: i64, changes: &CompanyChanges) -> Result<Company> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let mut company = load(tx.c(), ws, id, true).await?;
        let mut registry = load_registry(tx.c(), ws, Entity::Company).await?;
        let outcome = changes.apply(&mut company, &mut registry)?;
        // A write that leaves the company as it was writes nothing (core decides).
        if outcome.changed {
            company.updated_at = now();
            execute(
                tx.c(),
                "UPDATE companies SET external_id = $3, domain = $4, traits = $5, updated_at = $6
                 WHERE workspace_id = $1 AND id = $2",
                &[
                    &ws,
                    &id,
                    &company.external_id,
                    &company.domain,
                    &serde_json::Value::Object(company.traits.clone()),
                    &company.updated_at,
                ],
            )
            .await?;
        }
        insert_inferred_fields(tx.c(), ws, Entity::Company, &outcome.new_fields).await?;
        Ok(company)
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn delete(pool: &Pool, ws: &str, id: i64) -> Result<()> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let n = execute(tx.c(), "DELETE FROM companies WHERE workspace_id = $1 AND id = $2", &[&ws, &id]).await?;
        if n == 0 {
            return Err(Error::NotFound { entity: "company" });
        }
        execute(
            tx.c(),
            "UPDATE contacts SET company_id = NULL, updated_at = $3
             WHERE workspace_id = $1 AND company_id IS NOT NULL AND company_id = $2",
            &[&ws, &id, &now()],
        )
        .await?;
        Ok(())
    }
    .await;
    tx.finish(result).await
}

pub(crate) async fn list(pool: &Pool, ws: &str, filter: &CompanyFilter, page: &PageRequest) -> Result<Page<Company>> {
    let after = page.after_i64()?.unwrap_or(0);
    let limit = page.limit as i64 + 1;
    let c = conn(pool).await?;
    let mut sql = format!("SELECT {COLUMNS} FROM companies WHERE workspace_id = $1 AND id > $2");
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&ws, &after];
    if let Some(external_id) = &filter.external_id {
        params.push(external_id);
        sql.push_str(&format!(" AND external_id = ${}", params.len()));
    }
    if let Some(domain) = &filter.domain {
        params.push(domain);
        sql.push_str(&format!(" AND domain IS NOT NULL AND domain = ${}", params.len()));
    }
    params.push(&limit);
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", params.len()));
    let rows = query(&c, &sql, &params).await?;
    let items = rows.iter().map(company_from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |c| c.id.to_string()))
}

/// Upserts company rows in one transaction (see [`convene_core::Store::upsert_companies`]).
pub(crate) async fn upsert(
    pool: &Pool,
    ws: &str,
    rows: &[CompanyUpsert],
    options: BatchOptions,
) -> Result<BatchOutcome<Company>> {
    let tx = Tx::begin(pool).await?;
    let result = async {
        let ids: Vec<&str> = rows.iter().map(|r| r.external_id.as_str()).collect();
        let mut ctx = PgCompanyTx::load(tx.c(), ws, &ids).await?;
        let results = batch::upsert_companies(&mut ctx, ws, rows, now())?;
        let outcome = BatchOutcome { rows: results, written: true };
        let keep = options.keeps(&outcome);
        if keep {
            ctx.flush(tx.c(), ws).await?;
        }
        Ok((outcome, keep))
    }
    .await;
    match result {
        Ok((mut outcome, true)) => {
            tx.commit().await?;
            outcome.written = true;
            Ok(outcome)
        }
        Ok((mut outcome, false)) => {
            tx.rollback().await;
            outcome.written = false;
            Ok(outcome)
        }
        Err(e) => {
            tx.rollback().await;
            Err(e)
        }
    }
}
