-- Runs components/gateway/version_split.lua (as the stack writes it) outside Envoy: for each request of a case
-- file, a fake stream handle with its headers; prints, per request, the version header the filter left and
-- whether it cleared the route cache, as JSON.
--
--   lua5.4 version_split_harness.lua FILTER CASE
--
-- CASE is a Lua file returning a list of header tables.

local filter, case_file = arg[1], arg[2]
dofile(filter)
local requests = dofile(case_file)

local out = {}
for i, given in ipairs(requests) do
  local headers = { map = {} }
  for name, value in pairs(given) do headers.map[string.lower(name)] = value end
  function headers:get(name) return self.map[string.lower(name)] end
  function headers:replace(name, value) self.map[string.lower(name)] = value end
  function headers:remove(name) self.map[string.lower(name)] = nil end
  local cleared = false
  local handle = {}
  function handle:headers() return headers end
  function handle:clearRouteCache() cleared = true end
  envoy_on_request(handle)
  local version = headers:get("x-llmplane-version")
  out[i] = string.format('{"version":%s,"cleared":%s}', version and ('"' .. version .. '"') or "null",
                         tostring(cleared))
end
print("[" .. table.concat(out, ",") .. "]")
