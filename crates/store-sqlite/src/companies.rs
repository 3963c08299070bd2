//! Companies: core's [`CompanyTx`] over the writer's transaction, the
//! native CRUD and the list.

use convene_core::batch::{CompanyTx, RowStatus, upsert_company};
use convene_core::company::{Company, CompanyChanges, CompanyFilter};
use convene_core::field::{Entity, FieldRegistry, FieldType};
use convene_core::ids::now;
use convene_core::page::{Page, PageRequest};
use convene_core::{Error, Result};
use rusqlite::{Connection, Row, params};

use crate::conn::{WriteCtx, storage};
use crate::rows::{insert_inferred_fields, one, t, time};

const COLUMNS: &str = "id, external_id, domain, traits, created_at, updated_at";

fn company_from_row(row: &Row) -> rusqlite::Result<Company> {
    let traits: String = row.get(3)?;
    Ok(Company {
        id: row.get(0)?,
        external_id: row.get(1)?,
        domain: row.get(2)?,
        traits: serde_json::from_str(&traits).unwrap_or_default(),
        created_at: time(row, 4)?,
        updated_at: time(row, 5)?,
    })
}

fn write_error(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, Some(message)) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
        && message.contains("companies.external_id")
    {
        return Error::Conflict { entity: "company", field: "external_id".into(), row: None };
    }
    storage(e)
}

fn traits_text(company: &Company) -> String {
    serde_json::to_string(&company.traits).unwrap_or_else(|_| "{}".into())
}

/// core's view of the writer's transaction, for companies.
pub(crate) struct SqliteCompanyTx<'a> {
    pub ctx: &'a mut WriteCtx,
}

impl CompanyTx for SqliteCompanyTx<'_> {
    fn find_company(&mut self, ws: &str, external_id: &str) -> Result<Option<Company>> {
        let mut stmt = self
            .ctx
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM companies WHERE workspace_id = ?1 AND external_id = ?2"))
            .map_err(storage)?;
        one(stmt.query_row(params![ws, external_id], company_from_row))
    }

    fn company_registry(&mut self, ws: &str) -> Result<&mut FieldRegistry> {
        self.ctx.registry(ws, Entity::Company)
    }

    fn record_company_fields(&mut self, ws: &str, fields: &[(String, FieldType)]) -> Result<()> {
        insert_inferred_fields(&self.ctx.conn, ws, Entity::Company, fields)
    }

    fn insert_company(&mut self, ws: &str, c: &Company) -> Result<i64> {
        let mut stmt = self
            .ctx
            .conn
            .prepare_cached(
                "INSERT INTO companies (workspace_id, external_id, domain, traits, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(storage)?;
        stmt.execute(params![ws, c.external_id, c.domain, traits_text(c), t(&c.created_at), t(&c.updated_at)])
            .map_err(write_error)?;
        Ok(self.ctx.conn.last_insert_rowid())
    }

    fn update_company(&mut self, ws: &str, c: &Company) -> Result<()> {
        let mut stmt = self
            .ctx
            .conn
            .prepare_cached(
                "UPDATE companies SET external_id = ?3, domain = ?4, traits = ?5, updated_at = ?6
                 WHERE workspace_id = ?1 AND id = ?2",
            )
            .map_err(storage)?;
        stmt.execute(params![ws, c.id, c.external_id, c.domain, traits_text(c), t(&c.updated_at)])
            .map_err(write_error)?;
        Ok(())
    }
}

pub(crate) fn get(conn: &Connection, ws: &str, id: i64) -> Result<Company> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM companies WHERE workspace_id = ?1 AND id = ?2"))
        .map_err(storage)?;
    one(stmt.query_row(params![ws, id], company_from_row))?.ok_or(Error::NotFound { entity: "company" })
}

/// True when the company exists in the workspace.
pub(crate) fn exists(conn: &Connection, ws: &str, id: i64) -> Result<bool> {
    let mut stmt = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM companies WHERE workspace_id = ?1 AND id = ?2)")
        .map_err(storage)?;
    stmt.query_row(params![ws, id], |r| r.get(0)).map_err(storage)
}

pub(crate) fn create(ctx: &mut WriteCtx, ws: &str, changes: &CompanyChanges) -> Result<Company> {
    let external_id = changes.require_external_id()?.to_string();
    let mut tx = SqliteCompanyTx { ctx };
    if tx.find_company(ws, &external_id)?.is_some() {
        return Err(Error::Conflict { entity: "company", field: "external_id".into(), row: None });
    }
    let (status, company) = upsert_company(&mut tx, ws, &external_id, changes, now())?;
    debug_assert_eq!(status, RowStatus::Created);
    Ok(company)
}

/// Applies a write to a company; one that leaves it as it was writes
/// nothing and keeps `updated_at`.
pub(crate) fn update(ctx: &mut WriteCtx, ws: &str, id: i64, changes: &CompanyChanges) -> Result<Company> {
    let mut company = get(&ctx.conn, ws, id)?;
    let outcome = changes.apply(&mut company, ctx.registry(ws, Entity::Company)?)?;
    let mut tx = SqliteCompanyTx { ctx };
    if outcome.changed {
        company.updated_at = now();
        tx.update_company(ws, &company)?;
    }
    tx.record_company_fields(ws, &outcome.new_fields)?;
    Ok(company)
}

pub(crate) fn delete(conn: &Connection, ws: &str, id: i64) -> Result<()> {
    let n =
        conn.execute("DELETE FROM companies WHERE workspace_id = ?1 AND id = ?2", params![ws, id]).map_err(storage)?;
    if n == 0 {
        return Err(Error::NotFound { entity: "company" });
    }
    conn.execute(
        "UPDATE contacts SET company_id = NULL, updated_at = ?3 WHERE workspace_id = ?1 AND company_id = ?2",
        params![ws, id, t(&now())],
    )
    .map_err(storage)?;
    Ok(())
}

pub(crate) fn list(conn: &Connection, ws: &str, filter: &CompanyFilter, page: &PageRequest) -> Result<Page<Company>> {
    let after = page.after_i64()?.unwrap_or(0);
    // Only the filters given appear in the SQL, so the planner picks the
    // unique external-id index or the domain index.
    let mut sql = format!("SELECT {COLUMNS} FROM companies WHERE workspace_id = ?1 AND id > ?2");
    let mut args: Vec<rusqlite::types::Value> = vec![ws.to_string().into(), after.into()];
    for (column, value) in [("external_id", &filter.external_id), ("domain", &filter.domain)] {
        if let Some(v) = value {
            args.push(v.clone().into());
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    args.push((page.limit as i64 + 1).into());
    sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql).map_err(storage)?;
    let items = stmt
        .query_map(rusqlite::params_from_iter(args), company_from_row)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    Ok(Page::from_overfetch(items, page.limit, |c| c.id.to_string()))
}
