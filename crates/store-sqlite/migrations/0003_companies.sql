-- Companies for the native API and the dialects (the table itself came with
-- ingestion), contacts by company, and the subscription history.

CREATE INDEX companies_by_workspace ON companies (workspace_id, id);
CREATE INDEX companies_by_domain ON companies (workspace_id, domain, id) WHERE domain IS NOT NULL;
CREATE INDEX contacts_by_company ON contacts (workspace_id, company_id, id) WHERE company_id IS NOT NULL;

CREATE TABLE subscription_changes (
    id           INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    contact_id   INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    status       TEXT NOT NULL,
    previous     TEXT,
    source       TEXT NOT NULL,
    changed_at   TEXT NOT NULL
);
CREATE INDEX subscription_changes_by_contact ON subscription_changes (workspace_id, contact_id, id);
CREATE INDEX subscription_changes_by_contact_ref ON subscription_changes (contact_id);
