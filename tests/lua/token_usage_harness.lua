-- Runs components/gateway/token_usage.lua outside Envoy: a fake stream handle with the parts of Envoy's Lua API
-- the filter uses (headers, body, bodyChunks, streamInfo():dynamicMetadata()), driven by a case file.
--
--   lua5.4 token_usage_harness.lua FILTER CASE
--
-- CASE is a Lua file returning {phase = "request" | "response", headers = {...}, chunks = {...},
-- metadata = {...}} or {call = "<function of LLMPLANE_TOKEN_USAGE>", args = {...}}. The outcome is printed as
-- JSON: the headers, body and metadata after the phase, or the list of the function's results.

local filter, case_file = arg[1], arg[2]
dofile(filter)
local case = dofile(case_file)

local function encode(value)
  local kind = type(value)
  if kind == "nil" then return "null" end
  if kind == "boolean" or kind == "number" then return tostring(value) end
  if kind == "string" then
    return '"' .. value:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  end
  local keys = {}
  for key in pairs(value) do keys[#keys + 1] = tostring(key) end
  table.sort(keys)
  local parts = {}
  for _, key in ipairs(keys) do
    parts[#parts + 1] = encode(key) .. ":" .. encode(value[key])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function buffer(bytes)
  local self = { bytes = bytes }
  function self:length() return #self.bytes end
  function self:getBytes(index, length) return string.sub(self.bytes, index + 1, index + length) end
  function self:setBytes(new) self.bytes = new end
  return self
end

local headers = { map = {} }
for name, value in pairs(case.headers or {}) do headers.map[string.lower(name)] = value end
function headers:get(name) return self.map[string.lower(name)] end
function headers:replace(name, value) self.map[string.lower(name)] = value end
function headers:add(name, value) self.map[string.lower(name)] = value end
function headers:remove(name) self.map[string.lower(name)] = nil end

local metadata = { store = {} }
for namespace, values in pairs(case.metadata or {}) do metadata.store[namespace] = values end
function metadata:get(namespace) return self.store[namespace] end
function metadata:set(namespace, key, value)
  self.store[namespace] = self.store[namespace] or {}
  self.store[namespace][key] = value
end

local chunks = case.chunks or {}
local whole = table.concat(chunks)
local request_body = #whole > 0 and buffer(whole) or nil
local handle = {}
function handle:headers() return headers end
function handle:streamInfo() return { dynamicMetadata = function() return metadata end } end
function handle:body() return request_body end
function handle:bodyChunks()
  local i = 0
  return function()
    i = i + 1
    if chunks[i] then return buffer(chunks[i]) end
  end
end

if case.call then
  local results = table.pack(LLMPLANE_TOKEN_USAGE[case.call](table.unpack(case.args)))
  local parts = {}
  for i = 1, results.n do parts[i] = encode(results[i]) end
  print("[" .. table.concat(parts, ",") .. "]")
elseif case.phase == "request" then
  envoy_on_request(handle)
  print(encode({ headers = headers.map, body = request_body and request_body.bytes, metadata = metadata.store }))
else
  envoy_on_response(handle)
  print(encode({ headers = headers.map, metadata = metadata.store }))
end
