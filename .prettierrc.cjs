// prettier for the addon's XML and JavaScript, as OCA's addons template sets it for 18.0 (printWidth
// follows the repo's line length, 110, instead of OCA's 88).
/** @type {import('prettier').Config} */
const config = {
    plugins: [require.resolve("@prettier/plugin-xml")],
    bracketSpacing: false,
    printWidth: 110,
    proseWrap: "always",
    semi: true,
    tabWidth: 4,
    trailingComma: "es5",
    xmlWhitespaceSensitivity: "preserve",
};

module.exports = config;
