-- Storing a batch of events and claiming the webhook deliveries it made, in one round
-- trip. Before, the consumer stored a batch (one statement), then woke the dispatcher,
-- whose claim was a second round trip: under load each waited for a core and for
-- PostgreSQL, and the wait between an event's receipt and its webhook attempt was most
-- of an event's way.
--
-- The first statement is what `DeliveryRepository.record_events` ran on its own: the
-- events, their deliveries and client messages, one row per newly stored event. Then,
-- only when the batch made deliveries, `want` > 0 and no other claim is under way, the
-- dispatcher's claim (`claim_webhook_deliveries`, its own statement, so it sees the
-- rows just stored): one row per claim, `deliveries` NULL.
CREATE FUNCTION store_events_and_claim(
    event_ids uuid[], event_types text[], event_business_ids uuid[], event_payloads jsonb[],
    event_stream_seqs bigint[], event_bodies bytea[], event_order_keys text[],
    message_event_ids uuid[], message_business_ids uuid[], message_booking_ids uuid[],
    message_kinds text[], message_recipients text[], message_subjects text[],
    message_token uuid, message_leased integer, message_lease interval, message_ids uuid[],
    want integer, per_endpoint integer, watermark bigint, lease interval, token uuid
) RETURNS TABLE (
    event_id uuid, deliveries bigint, leased uuid[],
    id uuid, endpoint_id uuid, attempt_count integer, url text, secret text,
    previous_secret text, webhook_body bytea, payload jsonb
) LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    -- The claim relaxes durability for itself; the events stored with it keep it (they
    -- are acked to JetStream once this commits).
    durability text := current_setting('synchronous_commit');
    made boolean := false;
    receipt record;
BEGIN
    FOR receipt IN
        WITH incoming AS (
            SELECT * FROM unnest(
                $1, $2, $3, $4, $5, $6, $7
            ) AS t(event_id, type, business_id, payload, stream_seq, body, order_key)
        ), stored AS (
            INSERT INTO event_receipts
                (event_id, type, business_id, payload, stream_seq, webhook_body)
            SELECT event_id, type, business_id, payload, stream_seq, body FROM incoming
            ON CONFLICT (event_id) DO UPDATE
                SET deliveries = event_receipts.deliveries + 1
            RETURNING event_id, deliveries = 1 AS first
        ), made AS (
            INSERT INTO webhook_deliveries (id, endpoint_id, event_id, order_key, order_seq)
            SELECT gen_random_uuid(), e.id, i.event_id, i.order_key, i.stream_seq
            FROM stored s
            JOIN incoming i ON i.event_id = s.event_id
            JOIN webhook_endpoints e ON e.business_id = i.business_id AND e.enabled
                AND ('*' = ANY (e.events) OR i.type = ANY (e.events))
            WHERE s.first
            RETURNING event_id
        ), queued AS (
            INSERT INTO client_messages
                (id, event_id, business_id, booking_id, kind, recipient, subject,
                 lease_token, attempt_count, next_attempt_at)
            SELECT q.id, q.event_id, q.business_id, q.booking_id, q.kind, q.recipient,
                   q.subject,
                   CASE WHEN l.leased THEN $14 END,
                   CASE WHEN l.leased THEN 1 ELSE 0 END,
                   now() + CASE WHEN l.leased THEN $16 ELSE '0s' END
            FROM unnest($17, $8, $9, $10, $11, $12, $13) WITH ORDINALITY
                AS q(id, event_id, business_id, booking_id, kind, recipient, subject, n)
            -- Webhooks go first: a batch that made deliveries leases no message. Nor
            -- is one leased for an event received before (its row is not returned).
            CROSS JOIN LATERAL (
                SELECT q.n <= $15 AND NOT EXISTS (SELECT 1 FROM made)
                    AND EXISTS (SELECT 1 FROM stored s WHERE s.event_id = q.event_id
                                AND s.first) AS leased
            ) l
            ON CONFLICT (event_id) DO NOTHING
            RETURNING id, lease_token IS NOT NULL AS leased
        )
        SELECT s.event_id, count(m.event_id) AS deliveries,
               (SELECT array_agg(id) FROM queued WHERE leased) AS leased
        FROM stored s LEFT JOIN made m ON m.event_id = s.event_id
        WHERE s.first
        GROUP BY s.event_id
    LOOP
        event_id := receipt.event_id;
        deliveries := receipt.deliveries;
        leased := receipt.leased;
        made := made OR receipt.deliveries > 0;
        RETURN NEXT;
    END LOOP;
    event_id := NULL;
    deliveries := NULL;
    leased := NULL;
    -- Never waits for the claim lock: while the loop's claim holds it, that claim (or
    -- the next, which the loop is woken for) takes these deliveries.
    IF made AND want > 0 AND pg_try_advisory_xact_lock(121424973489785) THEN
        RETURN QUERY
        SELECT c.event_id, NULL::bigint, NULL::uuid[], c.id, c.endpoint_id, c.attempt_count,
            c.url, c.secret, c.previous_secret, c.webhook_body, c.payload
        FROM claim_webhook_deliveries(want, per_endpoint, watermark, lease, token) c;
        PERFORM set_config('synchronous_commit', durability, true);
    END IF;
END
$fn$;
