-- Members of shared conversations and their roles (README "Members and roles"). What a role
-- may do is conversation_rights (mnemo_may); managing members also needs the target's role,
-- old and new, to rank below the actor's (mnemo_role_rank). The caller ($1 user_id) must be a
-- member: anyone else gets no row (NotFound), never a hint that the conversation exists; a
-- member without the right gets a row whose "allowed" is false (NotPermitted), and nothing
-- changes.
-- A change runs in one transaction: get_member_locked first (the conversation's row locked,
-- as appends lock it, so changes and appends queue on it), then the change's statement, whose
-- snapshot therefore holds every change that committed before it and none in flight: counts,
-- ranks and presence are read once, race-free. The change's statement ends with
-- mnemo_member_event (migration 20261206_04): member_count, the owner, and the system message
-- that says what changed ({"type": "data-member", "data": {action, user_id, role, by}}, one
-- part per member changed), after every row of the change is written (it aggregates them).

-- name: get_member_locked
-- The caller's role in conversation $2, with the conversation's row locked until the
-- transaction ends. No row: not a member (or no such conversation), and nothing is locked.
-- returns: value
-- uses: conversation_members_pkey, conversations_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
SELECT mm.role
  FROM conversations AS c
  JOIN conversation_members AS mm ON mm.conversation_id = c.id
 WHERE c.id = $2
   AND mm.user_id = $1
   FOR UPDATE OF c;

-- name: list_members
-- A page of the members of conversation $2, in the order they joined, after the keyset
-- cursor ($3, $4): the (joined_at, user_id) of the last member seen ('-infinity' and any id for
-- the first page, so the row comparison is an index condition under any plan). One row with
-- NULL member columns: the caller is a member but the page is empty, or may not read
-- (allowed false); no row: not a member.
-- returns: Member + allowed
-- uses: conversation_members_pkey, conversation_members_joined_idx
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 joined_at timestamptz      cursor
-- $4 member_id uuid             cursor
-- $5 page_size int8             rows wanted + 1
SELECT m.conversation_id, m.user_id, m.role, m.joined_at, m.last_read_seq, m.added_by,
       mnemo_may(me.role, 'read') AS allowed
  FROM conversation_members AS me
  LEFT JOIN LATERAL (
        SELECT mm.conversation_id, mm.user_id, mm.role, mm.joined_at, mm.last_read_seq,
               mm.added_by
          FROM conversation_members AS mm
         WHERE mm.conversation_id = me.conversation_id
           AND (mm.joined_at, mm.user_id) > ($3, $4)
           AND mnemo_may(me.role, 'read')
         ORDER BY mm.joined_at, mm.user_id
         LIMIT $5
       ) AS m ON true
 WHERE me.conversation_id = $2
   AND me.user_id = $1
 ORDER BY m.joined_at, m.user_id;

-- name: insert_member
-- Add user $3 to conversation $2 with role $4 (after get_member_locked). Needs add_member and
-- a role ranked below the caller's (allowed); an active user (user_found); room: a direct
-- conversation holds two members; within_limit: fewer than $5 members (0: no limit). A user
-- already a member changes nothing and comes back with created false. The new member has
-- read what was there when they joined (last_read_seq = last_seq).
-- returns: Member + allowed, user_found, room, within_limit, created, event_seq
-- uses: conversation_members_pkey, conversations_pkey, users_pkey
-- $1 user_id uuid               the caller
-- $2 conversation_id uuid
-- $3 member_id uuid             the user to add
-- $4 role text
-- $5 max_members int4           APP_MAX_MEMBERS, 0 = no limit
-- $6 event_id uuid              the system message's id
WITH actor AS (
    SELECT coalesce(mnemo_may(mm.role, 'add_member')
                    AND mnemo_role_rank($4) < mnemo_role_rank(mm.role), false) AS allowed,
           c.kind, c.member_count, c.last_seq
      FROM conversation_members AS mm
      JOIN conversations AS c ON c.id = mm.conversation_id
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), present AS (
    SELECT mm.conversation_id, mm.user_id, mm.role, mm.joined_at, mm.last_read_seq, mm.added_by
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $3
), verdict AS (
    SELECT a.allowed,
           EXISTS (SELECT 1 FROM users AS u WHERE u.id = $3 AND u.deactivated_at IS NULL)
               AS user_found,
           EXISTS (SELECT 1 FROM present) AS present,
           a.kind = 'group' OR a.member_count < 2 AS room,
           $5 = 0 OR a.member_count < $5 AS within_limit,
           a.last_seq
      FROM actor AS a
), added AS (
    INSERT INTO conversation_members (conversation_id, user_id, role, last_read_seq,
                                      delivered_seq, added_by)
    SELECT $2, $3, $4, v.last_seq, v.last_seq, $1
      FROM verdict AS v
     WHERE v.allowed
       AND v.user_found
       AND NOT v.present
       AND v.room
       AND v.within_limit
        ON CONFLICT (conversation_id, user_id) DO NOTHING
    RETURNING conversation_id, user_id, role, joined_at, last_read_seq, added_by
), event AS (
    SELECT mnemo_member_event(
               $2, $6, $1,
               jsonb_agg(jsonb_build_object(
                   'type', 'data-member',
                   'data', jsonb_build_object('action', 'added', 'user_id', a.user_id,
                                              'role', a.role, 'by', $1))),
               count(*)::int4, NULL) AS seq
      FROM added AS a
    HAVING count(*) > 0
)
SELECT coalesce(a.conversation_id, p.conversation_id) AS conversation_id,
       coalesce(a.user_id, p.user_id) AS user_id,
       coalesce(a.role, p.role) AS role,
       coalesce(a.joined_at, p.joined_at) AS joined_at,
       coalesce(a.last_read_seq, p.last_read_seq) AS last_read_seq,
       CASE WHEN a.user_id IS NOT NULL THEN a.added_by ELSE p.added_by END AS added_by,
       v.allowed, v.user_found, v.room, v.within_limit, a.user_id IS NOT NULL AS created,
       e.seq AS event_seq
  FROM verdict AS v
  LEFT JOIN added AS a ON true
  LEFT JOIN present AS p ON true
  LEFT JOIN event AS e ON true;

-- name: update_member_role
-- Give member $3 of conversation $2 role $4 (after get_member_locked). Needs change_role, a
-- member other than oneself whose role, old and new, ranks below the caller's (allowed);
-- found: $3 is a member. The owner giving $4 = 'owner' hands ownership over: $3 becomes the
-- owner, the caller an admin, and conversations.user_id $3 (one system message, a part for
-- each). The member's role already $4: nothing changes (changed false).
-- returns: Member + may, found, allowed, changed, event_seq
-- uses: conversation_members_pkey
-- $1 user_id uuid               the caller
-- $2 conversation_id uuid
-- $3 member_id uuid
-- $4 role text
-- $5 event_id uuid              the system message's id
WITH actor AS (
    SELECT mm.role, mnemo_role_rank(mm.role) AS rank,
           mnemo_may(mm.role, 'change_role') AS may
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), target AS (
    SELECT mm.conversation_id, mm.user_id, mm.role, mm.joined_at, mm.last_read_seq, mm.added_by
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $3
), verdict AS (
    SELECT a.may,
           t.user_id IS NOT NULL AS found,
           coalesce(a.may
                    AND t.user_id <> $1
                    AND mnemo_role_rank(t.role) < a.rank
                    AND (mnemo_role_rank($4) < a.rank OR (a.role = 'owner' AND $4 = 'owner')),
                    false) AS allowed,
           a.role = 'owner' AND $4 = 'owner' AS handover,
           t.role IS DISTINCT FROM $4 AS changes
      FROM actor AS a
      LEFT JOIN target AS t ON true
), changed AS (
    UPDATE conversation_members AS mm
       SET role = CASE WHEN mm.user_id = $3 THEN $4 ELSE 'admin' END
      FROM verdict AS v
     WHERE mm.conversation_id = $2
       AND (mm.user_id = $3 OR (v.handover AND mm.user_id = $1))
       AND v.allowed
       AND v.changes
    RETURNING mm.conversation_id, mm.user_id, mm.role, mm.joined_at, mm.last_read_seq,
              mm.added_by
), event AS (
    SELECT mnemo_member_event(
               $2, $5, $1,
               -- the member given the role first, then (on a handover) the old owner
               jsonb_agg(jsonb_build_object(
                   'type', 'data-member',
                   'data', jsonb_build_object('action', 'role_changed', 'user_id', c.user_id,
                                              'role', c.role, 'by', $1))
                   ORDER BY c.user_id = $1),
               0, CASE WHEN $4 = 'owner' THEN $3 END) AS seq
      FROM changed AS c
    HAVING count(*) > 0
)
SELECT t.conversation_id, t.user_id, coalesce(c.role, t.role) AS role, t.joined_at,
       t.last_read_seq, t.added_by, v.may, v.found, v.allowed,
       c.user_id IS NOT NULL AS changed, e.seq AS event_seq
  FROM verdict AS v
  LEFT JOIN target AS t ON true
  LEFT JOIN changed AS c ON c.user_id = $3
  LEFT JOIN event AS e ON true;

-- name: delete_member
-- Remove member $3 from conversation $2 (after get_member_locked). Needs remove_member and a
-- member other than oneself ranked below the caller (allowed); found: $3 is a member.
-- Leaving is delete_member_self.
-- returns: Member + may, found, allowed, event_seq
-- uses: conversation_members_pkey
-- $1 user_id uuid               the caller
-- $2 conversation_id uuid
-- $3 member_id uuid
-- $4 event_id uuid              the system message's id
WITH actor AS (
    SELECT mnemo_role_rank(mm.role) AS rank, mnemo_may(mm.role, 'remove_member') AS may
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), target AS (
    SELECT mm.conversation_id, mm.user_id, mm.role, mm.joined_at, mm.last_read_seq, mm.added_by
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $3
), verdict AS (
    SELECT a.may,
           t.user_id IS NOT NULL AS found,
           coalesce(a.may AND t.user_id <> $1 AND mnemo_role_rank(t.role) < a.rank, false)
               AS allowed
      FROM actor AS a
      LEFT JOIN target AS t ON true
), removed AS (
    DELETE FROM conversation_members AS mm
     USING verdict AS v
     WHERE mm.conversation_id = $2
       AND mm.user_id = $3
       AND v.allowed
    RETURNING mm.user_id, mm.role
), event AS (
    SELECT mnemo_member_event(
               $2, $4, $1,
               jsonb_agg(jsonb_build_object(
                   'type', 'data-member',
                   'data', jsonb_build_object('action', 'removed', 'user_id', r.user_id,
                                              'role', r.role, 'by', $1))),
               -count(*)::int4, NULL) AS seq
      FROM removed AS r
    HAVING count(*) > 0
)
SELECT t.conversation_id, t.user_id, t.role, t.joined_at, t.last_read_seq, t.added_by,
       v.may, v.found, v.allowed, e.seq AS event_seq
  FROM verdict AS v
  LEFT JOIN target AS t ON true
  LEFT JOIN event AS e ON true;

-- name: delete_member_self
-- The caller leaves conversation $2 (after get_member_locked); any member may. The owner
-- hands ownership to the highest-ranked other member, the longest-standing among equals
-- (new_owner_id; one system message: left, and the heir's new role); an owner alone is
-- refused (allowed false): they delete the conversation instead.
-- returns: Member + allowed, new_owner_id, event_seq
-- uses: conversation_members_pkey
-- $1 user_id uuid
-- $2 conversation_id uuid
-- $3 event_id uuid              the system message's id
WITH me AS (
    SELECT mm.conversation_id, mm.user_id, mm.role, mm.joined_at, mm.last_read_seq, mm.added_by
      FROM conversation_members AS mm
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
), heir AS (
    SELECT mm.user_id
      FROM conversation_members AS mm, me
     WHERE mm.conversation_id = $2
       AND mm.user_id <> $1
       AND me.role = 'owner'
     ORDER BY mnemo_role_rank(mm.role) DESC, mm.joined_at, mm.user_id
     LIMIT 1
), verdict AS (
    SELECT me.role <> 'owner' OR EXISTS (SELECT 1 FROM heir) AS allowed
      FROM me
), gone AS (
    DELETE FROM conversation_members AS mm
     USING verdict AS v
     WHERE mm.conversation_id = $2
       AND mm.user_id = $1
       AND v.allowed
    RETURNING mm.user_id, mm.role
), promoted AS (
    UPDATE conversation_members AS mm
       SET role = 'owner'
      FROM heir AS h, verdict AS v
     WHERE mm.conversation_id = $2
       AND mm.user_id = h.user_id
       AND v.allowed
    RETURNING mm.user_id, mm.role
), event AS (
    SELECT mnemo_member_event(
               $2, $3, $1,
               jsonb_build_array(jsonb_build_object(
                   'type', 'data-member',
                   'data', jsonb_build_object('action', 'left', 'user_id', g.user_id,
                                              'role', g.role, 'by', $1)))
               || CASE WHEN p.user_id IS NULL THEN '[]'::jsonb
                       ELSE jsonb_build_array(jsonb_build_object(
                           'type', 'data-member',
                           'data', jsonb_build_object('action', 'role_changed',
                                                      'user_id', p.user_id, 'role', p.role,
                                                      'by', $1)))
                  END,
               -1, p.user_id) AS seq
      FROM gone AS g
      LEFT JOIN promoted AS p ON true
)
SELECT me.conversation_id, me.user_id, me.role, me.joined_at, me.last_read_seq, me.added_by,
       v.allowed, (SELECT h.user_id FROM heir AS h) AS new_owner_id, e.seq AS event_seq
  FROM me
 CROSS JOIN verdict AS v
  LEFT JOIN event AS e ON true;
