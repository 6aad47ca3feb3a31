// Bundled into vendor/age.js by build.mjs: the maintained JavaScript age implementation (typage).
export * from "age-encryption";
