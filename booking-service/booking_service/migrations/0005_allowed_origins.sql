-- The web origins whose pages may call the API with a business's session tokens (CORS),
-- e.g. the shop that embeds the booking widget. Exact origins, as browsers send them.
ALTER TABLE businesses ADD COLUMN allowed_origins text[] NOT NULL DEFAULT '{}';
