-- Runs once, when the compose stack's PostgreSQL volume is first initialised (the
-- official image runs /docker-entrypoint-initdb.d/*). booking-service's database,
-- `calendence`, is made by POSTGRES_DB; notify-service keeps its own database on the
-- same server, as the local stack does. The migration job creates the tables and the
-- btree_gist extension (shipped with the official image).
CREATE DATABASE calendence_notify;
