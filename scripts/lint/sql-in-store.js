// "No SQL outside the store adapters" (gateway/src/store/README.md, "Layering"), as lint rules: eslint.config.js
// applies them to gateway/ outside gateway/src/store/, and test/toolchain/sql-in-store.test.ts checks that they
// fire on SQL and stay quiet on look-alikes (an HTTP method 'DELETE', a RegExp's exec).
//
// What counts as SQL: a string or template literal that starts with a statement keyword and goes on (SELECT …,
// INSERT …, CREATE …, PRAGMA …, WITH name AS (…), or that holds a clause keyword followed by a name (… FROM visits, … WHERE x,
// … ON CONFLICT (…)); and calling a driver's statement API (.prepare, .pragma, .transaction, .query, or .exec
// with a literal).
const STATEMENT =
  '(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|PRAGMA|SAVEPOINT|RELEASE|BEGIN|COMMIT|ROLLBACK|VACUUM|ANALYZE|REINDEX)';
const statement = `/^\\s*(${STATEMENT}\\s+\\S|WITH\\s+(RECURSIVE\\s+)?[a-z_]+\\s.*AS\\s*\\()/`;
const clause = `/\\b(FROM|WHERE|JOIN|SET|VALUES|INTO|ON CONFLICT|GROUP BY|ORDER BY)\\s+[a-z_(]/`;

const fix =
  'put it in a store adapter (gateway/src/store/sqlite/ or gateway/src/store/postgres/) behind a port in gateway/src/store/, and call the port here';

/** The `no-restricted-syntax` entries, one per shape. */
export const sqlOutsideStore = [
  { selector: `Literal[value=${statement}]`, message: `SQL statement outside gateway/src/store/: ${fix}.` },
  { selector: `Literal[value=${clause}]`, message: `SQL clause outside gateway/src/store/: ${fix}.` },
  {
    selector: `TemplateElement[value.raw=${statement}]`,
    message: `SQL statement outside gateway/src/store/: ${fix}.`,
  },
  {
    selector: `TemplateElement[value.raw=${clause}]`,
    message: `SQL clause outside gateway/src/store/: ${fix}.`,
  },
  {
    selector: 'CallExpression[callee.property.name=/^(prepare|pragma|transaction|query)$/]',
    message: `A database statement API (.prepare/.pragma/.transaction/.query) outside gateway/src/store/: ${fix}.`,
  },
  {
    selector: "CallExpression[callee.property.name='exec'][arguments.0.type=/^(Literal|TemplateLiteral)$/]",
    message: `A database .exec of SQL outside gateway/src/store/: ${fix}.`,
  },
];

/**
 * Files that still run SQL outside the store, being moved under it (issue 14). Shrinks to empty; never add to it.
 */
export const sqlOutsideStoreYet = [];
