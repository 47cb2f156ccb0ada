-- Claiming due webhook deliveries in one round trip: the claim lock, then the claim.
-- A function, because each statement in it sees what committed before it ran: the
-- claim's snapshot is taken after the lock is held, so claims from several replicas
-- never count the same busy endpoint twice.
CREATE FUNCTION claim_webhook_deliveries(
    want integer, per_endpoint integer, watermark bigint, lease interval, token uuid
) RETURNS TABLE (
    id uuid, endpoint_id uuid, event_id uuid, attempt_count integer, url text, secret text,
    previous_secret text, webhook_body bytea, payload jsonb
) LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    -- A claim lost in a database crash is only claimed again: no need to wait for the
    -- disk.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- Serialises claims, so "at most per_endpoint in flight per endpoint" holds across
    -- replicas.
    PERFORM pg_advisory_xact_lock(121424973489785);  -- 0x6E6F74696679, "notify"
    RETURN QUERY
    WITH busy AS (
        SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
        WHERE status = 'pending' AND leased_until > now()
        GROUP BY endpoint_id
    ), open_endpoints AS (
        SELECT e.id, per_endpoint - coalesce(b.n, 0) AS room
        FROM webhook_endpoints e LEFT JOIN busy b ON b.endpoint_id = e.id
        WHERE e.enabled AND coalesce(b.n, 0) < per_endpoint
    ), picked AS (
        SELECT d.id FROM open_endpoints o CROSS JOIN LATERAL (
            SELECT d.id, d.seq, d.next_attempt_at FROM webhook_deliveries d
            WHERE d.endpoint_id = o.id AND d.status = 'pending'
              AND d.next_attempt_at <= now()
              AND (d.order_seq IS NULL OR (d.order_seq <= watermark AND NOT EXISTS (
                  SELECT 1 FROM webhook_deliveries p
                  WHERE p.endpoint_id = d.endpoint_id
                    AND p.order_key = d.order_key
                    AND p.status = 'pending' AND p.order_seq < d.order_seq)))
            ORDER BY d.next_attempt_at, d.seq
            LIMIT o.room
            FOR UPDATE SKIP LOCKED
        ) d
        ORDER BY d.next_attempt_at, d.seq
        LIMIT want
    )
    UPDATE webhook_deliveries d SET
        attempt_count = d.attempt_count + 1,
        next_attempt_at = now() + lease,
        leased_until = now() + lease,
        lease_token = token
    FROM picked, webhook_endpoints e, event_receipts r
    WHERE d.id = picked.id AND e.id = d.endpoint_id AND r.event_id = d.event_id
    RETURNING d.id, d.endpoint_id, d.event_id, d.attempt_count, e.url, e.secret,
        CASE WHEN e.previous_secret_expires_at > now()
             THEN e.previous_secret END AS previous_secret,
        r.webhook_body, r.payload;
END
$fn$;
