/** Where the tydra pages are mounted on the dashboard; its own file so the board's links need not import the pages. */
export const TYDRA_PAGES_PATH = '/tydra';
