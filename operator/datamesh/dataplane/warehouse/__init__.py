"""The warehouse adapter: what a product's tables, role and grants should be (``plan``,
pure), and the statements that bring a warehouse's observed state there (``statements``,
pure). An engine (PostgreSQL first) implements observing and executing; nothing here
talks to a database."""
