-- PostgreSQL role and databases: `sudo -u postgres psql -v password='<secret>' -f
-- deploy/postgresql.sql` (the same password as in DATABASE_URL and TRACKER_DB_URL). Then allow
-- the application machines in pg_hba.conf (scram-sha-256) and set listen_addresses.
-- README, "Deployment on several processes / machines".
CREATE ROLE dichvucong LOGIN PASSWORD :'password';
-- Application data: schema by `python -m bot migrate` (dichvucong-migrate.service).
CREATE DATABASE dichvucong OWNER dichvucong ENCODING 'UTF8' TEMPLATE template0;
-- Rasa's tracker store: Rasa creates its `events` table on first start.
CREATE DATABASE dichvucong_tracker OWNER dichvucong ENCODING 'UTF8' TEMPLATE template0;
