-- Companies for the native API and the dialects, contacts by company, and
-- the subscription history.

CREATE INDEX companies_by_domain ON companies (workspace_id, domain, id) WHERE domain IS NOT NULL;
CREATE INDEX contacts_by_company ON contacts (workspace_id, company_id, id) WHERE company_id IS NOT NULL;

CREATE TABLE subscription_changes (
    workspace_id text NOT NULL,
    id           bigserial,
    contact_id   bigint NOT NULL,
    status       text NOT NULL,
    previous     text,
    source       text NOT NULL,
    changed_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX subscription_changes_by_contact ON subscription_changes (workspace_id, contact_id, id);
