-- Search over messages and conversations (README "Search"): full text in English and in
-- Chinese/Japanese/Korean, tool/state/part-type/role filters, metadata containment, tags,
-- created_at ranges, each within one user's data and served by an index.
--
-- * messages.user_id: the owner of the message's conversation, copied onto the message so
--   that one user's messages are one index range (a search "within my data" must not visit
--   every user's matches). insert_message writes it; any other insert that leaves it NULL
--   (COPY of an import, ad-hoc SQL) gets it from the conversation (trigger); a conversation
--   that changes owner takes its messages' user_id along (trigger).
-- * messages.search_vector (generated): the message's text as lexemes — English words
--   stemmed by to_tsvector('english'), runs of CJK characters as overlapping bigrams (see
--   mnemo_cjk_vector) — plus "facets": lexemes in upper case that no text can produce
--   (to_tsvector lower-cases everything it emits), one per role, part type, tool and tool
--   state of the message. A tool filter is then one more lexeme of the same tsquery, and one
--   GIN index serves text, filters and both together.
-- * btree_gin lets user_id lead the GIN indexes: the scan intersects the user's posting list
--   with the lexemes', so a common word or tool costs what the user has, not what everyone has.
-- * messages_user_created_idx: a user's messages newest first, for a search with no text and
--   no facet (a created_at range, or nothing): keyset on (created_at, conversation_id, seq).
-- depends: 20261202_07_d9w2e-drop-threads-conversation-id

-- A trusted extension (PostgreSQL 13+): a database owner may create it. Shipped with every
-- PostgreSQL build that has the contrib modules (the embedded wheel and Debian's server do).
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- The characters indexed as CJK bigrams, by explicit code point ranges, so that the result is
-- the same whatever the database's locale (to_tsvector's parser decides what a letter is by
-- lc_ctype: under C it drops these characters; under C.UTF-8 it keeps a whole run as one word,
-- which a two-character word inside it would never match). Hiragana and Katakana, CJK Unified
-- Ideographs (with extension A, and B onwards), compatibility ideographs, Hangul syllables,
-- half-width Katakana.
CREATE FUNCTION mnemo_cjk_class() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f]'
$$;

-- The CJK runs of a text as lexemes: every run of n characters gives its n - 1 overlapping
-- bigrams at consecutive positions, then its last character alone (东京都 -> 东京:1 京都:2 都:3);
-- the next run starts one position further (no phrase spans two runs). Every occurrence of a
-- character is the first of a bigram or the last of its run, so a one-character query is the
-- prefix query '京':* and a longer one the phrase of its bigrams ('东京' <-> '京都').
-- The lexemes hold only CJK characters: written into the tsvector text as they are, unquoted.
CREATE FUNCTION mnemo_cjk_vector(body text) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path FROM CURRENT
AS $$
BEGIN
    -- Each run split into its characters once, each paired with the next by lead(): linear
    -- in the text (substr(run, i, 2) walks the run from its start each time: 50,000 Chinese
    -- characters took 9 s that way, 0.1 s this way).
    RETURN (
        SELECT coalesce(string_agg(c.lexeme || ':' || c.position, ' ')::tsvector, ''::tsvector)
          FROM (SELECT ch.c || coalesce(lead(ch.c) OVER (PARTITION BY r.n ORDER BY ch.i), '')
                           AS lexeme,
                       r.start + ch.i - 1 AS position
                  FROM (SELECT x.match[1] AS run, x.n,
                               sum(length(x.match[1]) + 1) OVER (ORDER BY x.n)
                                   - length(x.match[1]) AS start
                          FROM regexp_matches(body, mnemo_cjk_class() || '+', 'g')
                               WITH ORDINALITY AS x(match, n)
                       ) AS r,
                       unnest(string_to_array(r.run, NULL)) WITH ORDINALITY AS ch(c, i)
               ) AS c);
END
$$;

-- The searchable lexemes of a text: English words (stemmed, stop words left out) of what is
-- not CJK, then the CJK bigrams. Only the first 50,000 characters are indexed: a tsvector
-- holds at most 1 MB, which 100,000 distinct CJK bigrams would exceed, and positions stop at
-- 16,383 anyway. A text without CJK skips the bigrams (a regular expression test).
-- The functions that call others of ours take the search_path they were created with:
-- PostgreSQL 17+ runs index builds, ANALYZE and VACUUM with search_path = pg_catalog, where
-- an unqualified name in a function body is not found. PL/pgSQL (not a SQL function, which
-- such a SET keeps from being inlined) keeps its plans for the session: a SQL function that
-- is not inlined is planned again by every statement that calls it, as every append does.
CREATE FUNCTION mnemo_text_vector(body text) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path FROM CURRENT
AS $$
BEGIN
    RETURN to_tsvector('english'::regconfig,
                       regexp_replace(left(body, 50000), mnemo_cjk_class(), ' ', 'g'))
           || CASE WHEN left(body, 50000) ~ mnemo_cjk_class()
                   THEN mnemo_cjk_vector(left(body, 50000))
                   ELSE ''::tsvector END;
END
$$;

-- A message's facets as lexemes (no positions): ROLE:<role>; for each part PART:<type>, with
-- PART:tool for any tool part, PART:source for source-url/source-document, PART:data for
-- data-<name>; for tool parts (tool-<name>, dynamic-tool by toolName) TOOL:<name>,
-- STATE:<state> and TOOLSTATE:<name><U+001F><state> (that tool in that state, in one part).
-- Upper case: to_tsvector never emits an upper-case letter, so no text can forge a facet.
-- Each is cut at 200 characters (a lexeme holds at most 2 kB); queries cut theirs alike.
-- PL/pgSQL, as mnemo_text_vector (which see).
CREATE FUNCTION mnemo_message_facets(role text, parts jsonb) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN (
        SELECT array_to_tsvector(array_agg(DISTINCT left(f.facet, 200)))
          FROM (SELECT 'ROLE:' || role AS facet
                 UNION ALL
                SELECT v.facet
                  FROM jsonb_array_elements(parts) AS e(part),
                       LATERAL (SELECT e.part ->> 'type' AS kind,
                                       CASE WHEN e.part ->> 'type' LIKE 'tool-%'
                                            THEN substr(e.part ->> 'type', 6)
                                            WHEN e.part ->> 'type' = 'dynamic-tool'
                                            THEN e.part ->> 'toolName'
                                       END AS tool
                                 WHERE jsonb_typeof(e.part) = 'object') AS p,
                       LATERAL (VALUES ('PART:' || p.kind),
                                       (CASE WHEN p.tool IS NOT NULL THEN 'PART:tool' END),
                                       (CASE WHEN p.kind LIKE 'source-%' THEN 'PART:source' END),
                                       (CASE WHEN p.kind LIKE 'data-%' THEN 'PART:data' END),
                                       ('TOOL:' || p.tool),
                                       (CASE WHEN p.tool IS NOT NULL
                                             THEN 'STATE:' || (e.part ->> 'state') END),
                                       ('TOOLSTATE:' || p.tool || chr(31) || (e.part ->> 'state'))
                               ) AS v(facet)
                 WHERE v.facet IS NOT NULL
               ) AS f);
END
$$;

-- What messages.search_vector holds: the text's lexemes, then the facets.
CREATE FUNCTION mnemo_message_vector(role text, parts jsonb, content text) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path FROM CURRENT
AS $$
BEGIN
    RETURN mnemo_text_vector(content) || mnemo_message_facets(role, parts);
END
$$;

-- --- the query side ---------------------------------------------------------------------

-- A tsquery of exactly these lexemes, ANDed (facets: no normalization), each quoted as the
-- tsquery input syntax wants ('' for a quote, \ escaping): text from a client never becomes
-- tsquery syntax. Cut at 200 characters as facets are. NULL for no lexeme (the empty
-- tsquery is avoided throughout: reading or combining one sends the client a NOTICE).
CREATE FUNCTION mnemo_lexemes_query(lexemes text[]) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT string_agg('''' || replace(replace(left(l, 200), '\', '\\'), '''', '''''') || '''',
                      ' & ')::tsquery
      FROM unnest(lexemes) AS l
     WHERE l IS NOT NULL AND l <> ''
$$;

-- a && b, where NULL stands for the empty tsquery.
CREATE FUNCTION mnemo_tsquery_and(a tsquery, b tsquery) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE a && b END
$$;

-- The tsquery of one search term (a word, or a quoted phrase): its non-CJK stretches as
-- phraseto_tsquery('english') reads them (stemmed, stop words dropped, words in order), its
-- CJK runs as the phrase of their bigrams (a single character: the prefix query c:*), ANDed.
-- NULL when nothing is left (stop words only: checked with to_tsvector first, which says
-- nothing, where phraseto_tsquery would send a NOTICE).
CREATE FUNCTION mnemo_term_query(term text) RETURNS tsquery
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path FROM CURRENT
AS $$
DECLARE
    result tsquery;
    piece text;
    part tsquery;
BEGIN
    FOR piece IN
        SELECT x.match[1]
          FROM regexp_matches(term, mnemo_cjk_class() || '+|[^' || substr(mnemo_cjk_class(), 2)
                                  || '+', 'g') AS x(match)
    LOOP
        IF piece ~ ('^' || mnemo_cjk_class()) THEN
            IF length(piece) = 1 THEN
                part := (piece || ':*')::tsquery;
            ELSE
                SELECT string_agg(substr(piece, i, 2), ' <-> ' ORDER BY i)::tsquery
                  INTO part
                  FROM generate_series(1, length(piece) - 1) AS i;
            END IF;
        ELSIF length(to_tsvector('english'::regconfig, piece)) > 0 THEN
            part := phraseto_tsquery('english'::regconfig, piece);
        ELSE
            CONTINUE;
        END IF;
        result := mnemo_tsquery_and(result, part);
    END LOOP;
    RETURN result;
END
$$;

-- The tsquery of a parsed web-search query (dal/search_syntax.py): terms[i] is a word or a
-- phrase, negated[i] whether it is excluded (-word), clauses[i] the number of its clause. The
-- query is the AND of its clauses, each the OR of its terms: "a b OR c -d" is
-- a & (b | c) & !d, as websearch_to_tsquery reads it. A term that is all stop words drops
-- out (a clause left empty too). NULL when nothing is left.
CREATE FUNCTION mnemo_search_query(terms text[], negated boolean[], clauses integer[])
    RETURNS tsquery
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path FROM CURRENT
AS $$
DECLARE
    result tsquery;
    clause tsquery;
    current integer;
    term tsquery;
BEGIN
    FOR i IN 1 .. coalesce(array_length(terms, 1), 0) LOOP
        term := mnemo_term_query(terms[i]);
        CONTINUE WHEN term IS NULL;
        IF negated[i] THEN
            term := !! term;
        END IF;
        IF clauses[i] IS DISTINCT FROM current THEN
            result := mnemo_tsquery_and(result, clause);
            clause := term;
            current := clauses[i];
        ELSE
            clause := clause || term;
        END IF;
    END LOOP;
    RETURN mnemo_tsquery_and(result, clause);
END
$$;

-- --- the columns and their upkeep --------------------------------------------------------

ALTER TABLE messages ADD COLUMN user_id uuid;
UPDATE messages AS m SET user_id = c.user_id FROM conversations AS c WHERE c.id = m.conversation_id;
ALTER TABLE messages ALTER COLUMN user_id SET NOT NULL;

-- Fills messages.user_id when an insert leaves it out; insert_message gives it, and the WHEN
-- clause spares that insert the call.
CREATE FUNCTION mnemo_message_user_id() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    SELECT c.user_id INTO NEW.user_id FROM conversations AS c WHERE c.id = NEW.conversation_id;
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_user_id BEFORE INSERT ON messages
    FOR EACH ROW WHEN (NEW.user_id IS NULL) EXECUTE FUNCTION mnemo_message_user_id();

-- A conversation that changes owner takes its messages along.
CREATE FUNCTION mnemo_conversation_owner() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    UPDATE messages SET user_id = NEW.user_id WHERE conversation_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER conversations_owner AFTER UPDATE OF user_id ON conversations
    FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION mnemo_conversation_owner();

ALTER TABLE messages ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (mnemo_message_vector(role, parts, content)) STORED;

-- --- the indexes ------------------------------------------------------------------------

-- find_messages_matching (text and facets), find_messages_by_metadata, and the message side of
-- list_conversations_matching: one GIN index of three columns; a query uses the columns it
-- has conditions on (user_id always).
-- Appends add to the index's pending list (fastupdate, GIN's default: an append costs ~0.1 ms
-- more than without the index, against ~0.7 ms with fastupdate off), which every search reads
-- in full until VACUUM (autovacuum) or the limit moves it into the index: a smaller limit than
-- the default 4 MB bounds what a search reads there, and what the append that fills it pays.
CREATE INDEX messages_search_idx ON messages
    USING gin (user_id, search_vector, metadata jsonb_path_ops)
    WITH (gin_pending_list_limit = 1024);

-- find_messages_recent: a user's messages newest first (scanned backwards), keyset.
CREATE INDEX messages_user_created_idx ON messages (user_id, created_at, conversation_id, seq);

-- list_conversations_matching (titles), list_conversations_tagged, list_conversations_by_metadata.
-- Every append updates its conversation's row (counters, updated_at), hence new entries here:
-- the same pending list keeps that cheap.
CREATE INDEX conversations_search_idx ON conversations
    USING gin (user_id, mnemo_text_vector(title), tags, metadata jsonb_path_ops)
    WITH (gin_pending_list_limit = 1024);
