-- `languages`: posts per language in bronze, before silver drops the non-English ones.
-- A line that is not a post has no language: it counts under Twitter's code `und`.
CREATE OR REFRESH STREAMING TABLE languages (
  CONSTRAINT `count is positive` EXPECT (`count` > 0)
)
COMMENT "Language statistics of all ingested posts (before the EN filter)"
AS SELECT coalesce(lang, "und") AS lang, count(*) AS count
FROM STREAM(LIVE.bronze)
GROUP BY coalesce(lang, "und")
ORDER BY count;
