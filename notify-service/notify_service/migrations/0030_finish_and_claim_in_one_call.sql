-- Recording finished webhook attempts and claiming the next ones in one round trip.
-- With at most a few attempts in flight per endpoint, the time from one attempt's answer
-- to the next attempt's start bounds an endpoint's rate: the dispatcher hands over the
-- results of the attempts that ended since its last call, each is recorded as one
-- attempt always was (the attempt, the delivery's outcome, the endpoint's failure run),
-- and then deliveries are claimed as `claim_webhook_deliveries` does, in the same call.
-- Returns the claims, and one row (`finished`, only `id` set) for each recorded attempt
-- that disabled its endpoint.
CREATE FUNCTION finish_and_claim_webhook_deliveries(
    delivery_ids uuid[], lease_tokens uuid[], attempts integer[], attempted_ats timestamptz[],
    status_codes integer[], latencies_ms double precision[], errors text[],
    retry_ins interval[], disable_after interval, disabled_reasons text[],
    want integer, per_endpoint integer, watermark bigint, lease interval, token uuid
) RETURNS TABLE (
    id uuid, endpoint_id uuid, event_id uuid, attempt_count integer, url text, secret text,
    previous_secret text, webhook_body bytea, payload jsonb, finished boolean
) LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    i integer;
    succeeded boolean;
    gave_up boolean;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(delivery_ids), 0) LOOP
        succeeded := coalesce(status_codes[i] BETWEEN 200 AND 299, false);
        WITH target AS (
            SELECT d.id, d.endpoint_id, d.lease_token = lease_tokens[i] AS current
            FROM webhook_deliveries d WHERE d.id = delivery_ids[i] FOR UPDATE
        ), attempt AS (
            INSERT INTO webhook_attempts
                (delivery_id, attempt, attempted_at, status_code, latency_ms, error)
            SELECT t.id, attempts[i], attempted_ats[i], status_codes[i], latencies_ms[i],
                errors[i]
            FROM target t
            ON CONFLICT DO NOTHING
        ), delivery AS (
            UPDATE webhook_deliveries d SET
                status = CASE WHEN succeeded THEN 'succeeded'
                              WHEN retry_ins[i] IS NULL THEN 'failed'
                              ELSE 'pending' END,
                completed_at = CASE WHEN succeeded OR retry_ins[i] IS NULL THEN now() END,
                next_attempt_at = coalesce(now() + retry_ins[i], d.next_attempt_at),
                leased_until = NULL, lease_token = NULL
            FROM target t WHERE d.id = t.id AND t.current
        ), endpoint AS (
            SELECT e.id, e.failing_since,
                e.enabled AND NOT succeeded
                    AND coalesce(e.failing_since <= now() - disable_after, false) AS give_up
            FROM webhook_endpoints e JOIN target t ON e.id = t.endpoint_id
        ), changed AS (
            UPDATE webhook_endpoints e SET
                failing_since = CASE WHEN succeeded THEN NULL
                                     ELSE coalesce(e.failing_since, attempted_ats[i]) END,
                enabled = e.enabled AND NOT x.give_up,
                disabled_at = CASE WHEN x.give_up THEN now() ELSE e.disabled_at END,
                disabled_reason = CASE WHEN x.give_up THEN disabled_reasons[i]
                                       ELSE e.disabled_reason END
            FROM endpoint x
            WHERE e.id = x.id AND NOT (succeeded AND x.failing_since IS NULL)
            RETURNING x.give_up
        )
        SELECT coalesce((SELECT c.give_up FROM changed c), false) INTO gave_up;
        IF gave_up THEN
            id := delivery_ids[i];
            finished := true;
            RETURN NEXT;
        END IF;
    END LOOP;
    IF want > 0 THEN
        -- Its own statements, each with a snapshot taken after the claim lock is held.
        RETURN QUERY
        SELECT c.id, c.endpoint_id, c.event_id, c.attempt_count, c.url, c.secret,
            c.previous_secret, c.webhook_body, c.payload, false
        FROM claim_webhook_deliveries(want, per_endpoint, watermark, lease, token) c;
    END IF;
    IF coalesce(cardinality(delivery_ids), 0) > 0 THEN
        -- The claim relaxes durability for itself (a lost claim is only claimed again);
        -- recorded results keep it.
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
END
$fn$;
