-- Faster ingestion (docs/scaling.md, BENCHMARKS.md "PostgreSQL").
--
-- Contacts are updated far more often than inserted, and most updates change
-- traits only: leaving 15% of each page free lets the new row version stay on
-- its page (a HOT update), so no index gets a new entry. Pages written before
-- this migration fill up as before; new and rewritten pages keep the room.
ALTER TABLE contacts SET (fillfactor = 85);

-- Workspaces are never deleted, and every contact write names the workspace
-- the request was authenticated for: the foreign key only cost one lookup of
-- `workspaces` per inserted contact.
ALTER TABLE contacts DROP CONSTRAINT IF EXISTS contacts_workspace_id_fkey;
