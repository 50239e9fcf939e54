-- `silver`: the original's columns id, geo, lang, text; English posts only.
-- `id` is inferred as BIGINT, so the original's `id != ""` reads "present and not empty".
CREATE OR REFRESH STREAMING TABLE silver (
  CONSTRAINT valid_language EXPECT (lang == "en") ON VIOLATION DROP ROW,
  CONSTRAINT valid_id EXPECT (id IS NOT NULL AND CAST(id AS STRING) != "") ON VIOLATION DROP ROW
)
COMMENT "data is cleansed - other languages than EN are dropped"
AS SELECT id, geo, lang, text FROM STREAM(LIVE.bronze);
