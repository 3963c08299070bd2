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

-- Inbox bodies (JSON of about 300 bytes per item) are compressed when
-- written and decompressed when applied: lz4 costs a fraction of pglz's CPU
-- on both sides. A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE ingest_inbox ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available: inbox bodies stay compressed with pglz';
END
$$;
