-- A booking made in one statement (no deposit, no Idempotency-Key) writes its
-- booking.created event in that statement, before any Python has rendered its document:
-- the event's data is then the booking's row as stored (to_jsonb of what a read of the
-- booking returns, with its manage link), and the outbox relay renders the public
-- document from it before publishing. Rows written otherwise carry the document itself.
ALTER TABLE outbox ADD COLUMN data_is_row boolean NOT NULL DEFAULT false;
