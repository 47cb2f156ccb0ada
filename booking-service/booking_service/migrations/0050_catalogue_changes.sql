-- hold-service reads a business's catalogue from its snapshot in the NATS key-value
-- bucket CALENDENCE_CATALOGUES, which booking-service writes after each change commits.
-- Every write to what a snapshot holds (locations, services, staff, time off, the
-- business's booking policy) leaves a row here in its own transaction: triggers, so no
-- write path can forget it. booking-service deletes the rows a snapshot covers once that
-- snapshot is in the bucket; rows left behind (NATS away, a crash after the commit) are
-- published by its repair loop. A change is never lost to the bucket, only delayed.
-- Plain inserts, no unique key: a change never waits on another transaction here.
CREATE TABLE catalogue_changes (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_id uuid NOT NULL REFERENCES businesses (id),
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX catalogue_changes_business_idx ON catalogue_changes (business_id);

CREATE FUNCTION note_catalogue_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'businesses' THEN
        INSERT INTO catalogue_changes (business_id) VALUES (NEW.id);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO catalogue_changes (business_id) VALUES (OLD.business_id);
    ELSE
        INSERT INTO catalogue_changes (business_id) VALUES (NEW.business_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER catalogue_changed AFTER INSERT OR UPDATE OR DELETE ON locations
    FOR EACH ROW EXECUTE FUNCTION note_catalogue_change();
CREATE TRIGGER catalogue_changed AFTER INSERT OR UPDATE OR DELETE ON services
    FOR EACH ROW EXECUTE FUNCTION note_catalogue_change();
CREATE TRIGGER catalogue_changed AFTER INSERT OR UPDATE OR DELETE ON staff
    FOR EACH ROW EXECUTE FUNCTION note_catalogue_change();
CREATE TRIGGER catalogue_changed AFTER INSERT OR UPDATE OR DELETE ON time_off
    FOR EACH ROW EXECUTE FUNCTION note_catalogue_change();
-- A new business gets its (empty) snapshot; a business's own row matters only for
-- its booking policy.
CREATE TRIGGER catalogue_changed AFTER INSERT ON businesses
    FOR EACH ROW EXECUTE FUNCTION note_catalogue_change();
CREATE TRIGGER catalogue_policy_changed AFTER UPDATE OF booking_policy ON businesses
    FOR EACH ROW WHEN (OLD.booking_policy IS DISTINCT FROM NEW.booking_policy)
    EXECUTE FUNCTION note_catalogue_change();

-- Every business existing now gets its first snapshot from booking-service's next start.
INSERT INTO catalogue_changes (business_id) SELECT id FROM businesses;
