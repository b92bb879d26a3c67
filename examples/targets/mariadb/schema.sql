-- The table the client's transactions use, and the account it logs in with
-- (mysql_native_password, from the control node's address).
CREATE DATABASE distest;
CREATE TABLE distest.txn (k INT PRIMARY KEY, v TEXT NOT NULL) ENGINE = InnoDB;
CREATE USER 'distest'@'%' IDENTIFIED BY 'distest';
GRANT ALL ON distest.* TO 'distest'@'%';
