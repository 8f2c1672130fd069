-- The operational systems the live mesh's source-aligned products load from: a shop,
-- a ledger, a CRM and an app's event stream, with a few thousand rows each over the
-- last 90 days. Deterministic (setseed), so every cluster holds the same rows.
-- Run by localcluster.livemesh into the `sources` database; safe to run again.
SELECT setseed(0.42);

DROP SCHEMA IF EXISTS shop, ledger, crm, app CASCADE;
CREATE SCHEMA shop;
CREATE SCHEMA ledger;
CREATE SCHEMA crm;
CREATE SCHEMA app;

CREATE TABLE shop.customers (
    customer_id text PRIMARY KEY,
    name text NOT NULL,
    email text,
    phone text,
    country text NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO shop.customers
SELECT 'C' || lpad(i::text, 5, '0'),
       (ARRAY['Ada','Grace','Linus','Barbara','Edsger','Margaret','Dennis','Frances'])[1 + i % 8]
         || ' ' || (ARRAY['Lovelace','Hopper','Torvalds','Liskov','Dijkstra','Hamilton','Ritchie','Allen'])[1 + (i / 8) % 8],
       'customer' || i || '@example.com',
       CASE WHEN i % 5 = 0 THEN NULL ELSE '+49 30 ' || lpad((i * 7919 % 1000000)::text, 6, '0') END,
       (ARRAY['DE','FR','NL','GB','US','ES'])[1 + i % 6],
       now() - (2000 - i) * interval '3 hours'
FROM generate_series(1, 2000) AS i;

-- 6,000 orders of one to three lines each.
CREATE TABLE shop.order_lines (
    order_id text NOT NULL,
    line_number integer NOT NULL,
    customer_id text NOT NULL REFERENCES shop.customers,
    sku text NOT NULL,
    quantity integer NOT NULL,
    unit_price numeric(10, 2) NOT NULL,
    currency text NOT NULL,
    ordered_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, line_number)
);
INSERT INTO shop.order_lines
SELECT 'O' || lpad(o::text, 6, '0'),
       l,
       'C' || lpad((1 + (o * 37) % 2000)::text, 5, '0'),
       'SKU-' || lpad((1 + floor(random() * 250))::int::text, 4, '0'),
       1 + floor(random() * 5)::int,
       round((5 + random() * 195)::numeric, 2),
       CASE WHEN (1 + (o * 37) % 2000) % 6 = 3 THEN 'GBP'
            WHEN (1 + (o * 37) % 2000) % 6 = 4 THEN 'USD' ELSE 'EUR' END,
       now() - interval '90 days' + (o::double precision / 6000) * interval '90 days'
FROM generate_series(1, 6000) AS o
CROSS JOIN LATERAL generate_series(1, 1 + (o * 7) % 3) AS l;

-- A real defect, for the demo's quality checks to find: the shop wrote three order
-- lines with a currency outside the contract's allowed values. The `orders` product's
-- check currency-allowed-values fails with these rows as its sample. The fix is this one
-- line: delete the UPDATE below, and the next run of the orders pipeline passes.
UPDATE shop.order_lines SET currency = 'euro' WHERE order_id IN ('O000100', 'O000200', 'O000300') AND line_number = 1;

-- Double-entry postings: each entry debits receivables and credits revenue.
CREATE TABLE ledger.postings (
    entry_id text NOT NULL,
    line_number integer NOT NULL,
    account text NOT NULL,
    amount numeric(12, 2) NOT NULL,
    posted_at timestamptz NOT NULL,
    PRIMARY KEY (entry_id, line_number)
);
INSERT INTO ledger.postings
SELECT 'E' || lpad(e::text, 6, '0'), l,
       CASE l WHEN 1 THEN '1200' ELSE '4000' END,
       CASE l WHEN 1 THEN a ELSE -a END,
       t
FROM (
    SELECT e, round((20 + random() * 980)::numeric, 2) AS a,
           now() - interval '90 days' + (e::double precision / 4000) * interval '90 days' AS t
    FROM generate_series(1, 4000) AS e
) AS entries
CROSS JOIN generate_series(1, 2) AS l;

CREATE TABLE crm.campaigns (
    campaign_id text PRIMARY KEY,
    name text NOT NULL,
    channel text NOT NULL,
    budget numeric(12, 2) NOT NULL,
    starts_on date NOT NULL,
    ends_on date NOT NULL
);
INSERT INTO crm.campaigns
SELECT 'K' || lpad(c::text, 3, '0'),
       (ARRAY['Spring','Summer','Autumn','Winter'])[1 + c % 4] || ' push ' || c,
       (ARRAY['email','search','social','display'])[1 + c % 4],
       round((1000 + random() * 49000)::numeric, 2),
       current_date - 90 + c * 2,
       current_date - 60 + c * 2
FROM generate_series(1, 40) AS c;

CREATE TABLE crm.leads (
    lead_id text PRIMARY KEY,
    email text,
    campaign_id text REFERENCES crm.campaigns,
    score integer NOT NULL,
    captured_at timestamptz NOT NULL
);
INSERT INTO crm.leads
SELECT 'L' || lpad(i::text, 5, '0'),
       'lead' || i || '@example.org',
       'K' || lpad((1 + i % 40)::text, 3, '0'),
       floor(random() * 101)::int,
       now() - interval '90 days' + (i::double precision / 3000) * interval '90 days'
FROM generate_series(1, 3000) AS i;

CREATE TABLE app.events (
    event_id text PRIMARY KEY,
    user_key text NOT NULL,
    name text NOT NULL,
    occurred_at timestamptz NOT NULL,
    platform text NOT NULL
);
INSERT INTO app.events
SELECT 'V' || lpad(i::text, 7, '0'),
       'C' || lpad((1 + floor(random() * 2000))::int::text, 5, '0'),
       (ARRAY['login','search','add_to_cart','checkout','share','export'])[1 + floor(random() * 6)::int],
       now() - interval '30 days' + (i::double precision / 30000) * interval '30 days',
       (ARRAY['web','ios','android'])[1 + i % 3]
FROM generate_series(1, 30000) AS i;
